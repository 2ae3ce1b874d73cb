"""The request log: each API request and portal page, kept REQUEST_LOG_RETENTION_DAYS.

`buffer.py` collects the rows in process and writes them in batches (never a second
transaction per request); `selectors.py` reads them for the person they belong to;
`services.py` prunes them.
"""
