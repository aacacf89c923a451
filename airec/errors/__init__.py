"""Errors answered as JSON: the body's format (bodies) and which exception gets which answer
(handlers). This file only re-exports, so that `from airec.errors import describe_validation` keeps
working."""

from airec.errors.bodies import describe_validation, error_response, json_http_error
from airec.errors.handlers import register_error_handlers

__all__ = ["describe_validation", "error_response", "json_http_error", "register_error_handlers"]
