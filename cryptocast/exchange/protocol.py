"""Names shared by the replay server and the exchange client: replay-only headers and keys.

Binance sends none of these; the client treats their absence as "live exchange".
"""

USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
REPLAY_NOW_HEADER = "X-Replay-Now-Ms"  # exchange clock when the response was made
REPLAY_SPEED_HEADER = "X-Replay-Speed"
REPLAY_SHIFT_HEADER = "X-Replay-Shift-Ms"  # how far the named symbol's recording was moved in time
REPLAY_INFO_PATH = "/replay/info"  # loopback-only description of the timeline, shifts and speed
DERIVED_KEY = "derivedFields"  # exchangeInfo symbol key: fields derived rather than recorded
CLONE_KEY = "clone"  # exchangeInfo symbol key: a load-test clone of another recording
CLONE_OF_KEY = "cloneOf"
BOOK_FIELD = "book_ticker"  # in derivedFields: top of book modelled from the forming price
