"""Reka's wire protocol without I/O: SSE decoding, answer accumulation, request and error bodies.

Both clients feed bytes in and get text, completions and typed errors out; nothing here opens a
socket or imports httpx or IPython.
"""
