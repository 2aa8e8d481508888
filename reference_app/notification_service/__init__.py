"""Reference notification service: the application that notification-emergency manages."""

__version__ = "1.0.0"
