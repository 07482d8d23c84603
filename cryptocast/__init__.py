"""cryptocast: crypto price forecasting on Ray."""

__version__ = "0.1.0"
