"""Catalogues: reading a file (``importer``), keeping a vector index in line with it (``index``), the
in-memory columns retrieval and scoring read (``table``), and which collection is in use (``collections``)."""
