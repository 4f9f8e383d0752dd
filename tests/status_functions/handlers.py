"""Handlers for tests/test_status_page.py: one that takes a while, one that fails."""

import time


def slow(event, context):
    time.sleep(0.5)
    return event["Records"][0]["cf"]["request"]


def broken(event, context):
    raise RuntimeError("the coupon service is down")
