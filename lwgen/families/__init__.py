"""Model families: one module per family plus the registry (``registry``)."""
