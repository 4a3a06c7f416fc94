"""Every public name, and every public method of the public classes, has a docstring."""

from __future__ import annotations

import inspect

import mgpy


def test_every_public_name_is_documented() -> None:
    missing = []
    for name in mgpy.__all__:
        obj = getattr(mgpy, name)
        if (callable(obj) or inspect.isclass(obj)) and not (obj.__doc__ or "").strip():
            missing.append(name)
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if attr.startswith("_"):
                    continue
                fn = value.fget if isinstance(value, property) else value
                if callable(fn) and not (fn.__doc__ or "").strip():
                    missing.append(f"{name}.{attr}")
    assert missing == []


def test_all_lists_what_the_design_promises() -> None:
    promised = """Manager Connection Mbuf Ev F Limits HttpMessage WsMessage MultipartPart Error
    ProtocolError LocalProtocolError RemoteProtocolError LimitExceeded ServeOpts TlsOpts
    serve_http serve_file register_http_endpoint file_upload_handler get_http_basic_auth
    check_digest_auth create_digest_auth_header send_digest_auth_request get_http_header
    http_parse_header get_http_var url_decode url_encode http_reply http_send_error
    http_send_redirect WS_OP_CONTINUE WS_OP_TEXT WS_OP_BINARY WS_OP_CLOSE WS_OP_PING
    WS_OP_PONG WS_DONT_FIN""".split()
    assert sorted(set(promised) - set(mgpy.__all__)) == []
    for name in mgpy.__all__:
        assert hasattr(mgpy, name), name


#: Connection methods that mirror a mongoose function: each also exists as ``mgpy.<name>(c, ...)``
MONGOOSE_METHODS = [
    "send",
    "printf",
    "set_timer",
    "set_protocol_http_websocket",
    "send_head",
    "send_http_chunk",
    "printf_http_chunk",
    "send_websocket_frame",
    "printf_websocket_frame",
    "ws_close",
]


def test_every_mongoose_style_method_is_also_a_function() -> None:
    for name in MONGOOSE_METHODS:
        assert callable(getattr(mgpy.Connection, name)), name
        fn = getattr(mgpy, name)
        assert callable(fn) and name in mgpy.__all__, name
        params = list(inspect.signature(fn).parameters)
        assert params[0] == "c", f"mgpy.{name} takes the connection first"
    for name in ("bind", "connect", "connect_http", "connect_ws"):
        assert callable(getattr(mgpy.Manager, name)) and name in mgpy.__all__, name
        assert next(iter(inspect.signature(getattr(mgpy, name)).parameters)) == "mgr"
