"""The client: one question's path (``question``), the request flow, and two thin drivers,
``RekaClient`` (``sync``) and ``AsyncRekaClient`` (``aio``, imported when first used)."""
