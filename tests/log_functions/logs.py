"""Handlers that log in every way, for tests/test_json_logs.py."""

import logging

logger = logging.getLogger("shop")


def handler(event, context):
    logger.debug("debug detail")
    logger.info("paid %s", event.get("order", "?"))
    logger.warning("slow", extra={"elapsed_ms": 1200})
    try:
        raise ValueError("bad coupon")
    except ValueError:
        logger.exception("coupon refused")
    print("plain print")
    if event.get("fail"):
        raise KeyError("missing")
    return {"ok": True}
