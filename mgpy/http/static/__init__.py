"""Static files (``serve_http``, ``serve_file``): resolution (``fs``), the sendfile and
brotli body producers (``send``), directory listings (``listing``), the request flow
(``serve``).  Import from the modules; this package re-exports nothing (``auth`` imports
``fs``, so importing ``serve`` here would be a cycle)."""
