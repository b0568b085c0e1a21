"""Demo Document modules served when ``RESTENGINE_DOCUMENTS`` is not set."""
