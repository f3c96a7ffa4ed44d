# gearbox guest prelude (Python), part 0: the bridge to the host.
#
# Runs first in every interpreter, before any user code, in __main__; the user's script runs in
# its own globals dict (_gb_user). The host functions come from the engine as module
# _gearbox_host (call: blocking, start: async); they never raise: a stop or a limit comes back
# as a coded error reply, raised here as GearsError (so `finally` and `__exit__` run).
#
# Wire format (host/sandbox/engines/quickjs/wire-codec.ts, shared by both guests): JSON where
# bytes travel as {"\u0000b": "<latin1>"} and big integers as {"\u0000n": "<decimal>"}; a host
# reply is a one-character tag and a body: 'v' plain JSON, 'x' JSON with special objects, 'e' a
# GearsError message, 'c' {code, message}.
import _gearbox_host
import json as _gb_json
import sys as _gb_sys
import io as _gb_io

_gb_raw_call = _gearbox_host.call
_gb_raw_start = _gearbox_host.start
del _gearbox_host

_GB_BYTES_KEY = '\x00b'
_GB_BIGINT_KEY = '\x00n'
_GB_MAX_NESTING = 1000


class GearsError(Exception):
    """RedisGears' gears.error; `code` is set for host errors (ERR_GEARBOX_...)."""

    def __init__(self, message='', code=None):
        super().__init__(message)
        self.code = code


class _GbFlatError(GearsError):
    """Raised by flat_error(): its message is reported verbatim (no traceback)."""


def _gb_latin1(data):
    return ''.join(map(chr, data))


def _gb_revive(value, depth=0):
    if depth > _GB_MAX_NESTING:
        raise GearsError('a value nested too deeply to convert', 'ERR_GEARBOX_NESTING_LIMIT')
    if isinstance(value, list):
        return [_gb_revive(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            b = value.get(_GB_BYTES_KEY)
            if isinstance(b, str):
                return bytes(map(ord, b))
            n = value.get(_GB_BIGINT_KEY)
            if isinstance(n, str):
                return int(n)
        out = {}
        for k in value:
            out[k] = _gb_revive(value[k], depth + 1)
        return out
    return value


def _gb_decode(reply):
    if not isinstance(reply, str) or not reply:
        raise GearsError('gearbox: malformed host reply')
    tag = reply[0]
    if tag == 'v':
        return _gb_json.loads(reply[1:])
    if tag == 'x':
        return _gb_revive(_gb_json.loads(reply[1:]))
    if tag == 'e':
        raise GearsError(reply[1:])
    if tag == 'c':
        d = _gb_json.loads(reply[1:])
        raise GearsError(d.get('message', ''), d.get('code'))
    raise GearsError('gearbox: malformed host reply')


def _gb_arg(x):
    """An execute()-style argument: bytes binary-safe, anything else str(x) (RedisGears)."""
    if isinstance(x, (bytes, bytearray)):
        return {_GB_BYTES_KEY: _gb_latin1(x)}
    return x if isinstance(x, str) else str(x)


def _gb_wire(value, depth=0):
    """A Python value as wire data (JSON-compatible; bytes and big ints as special objects)."""
    if depth > _GB_MAX_NESTING:
        raise GearsError('a value nested deeper than 1000 lists/dicts cannot cross to the host', 'ERR_GEARBOX_NESTING_LIMIT')
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if -9007199254740991 <= value <= 9007199254740991:
            return value
        return {_GB_BIGINT_KEY: str(value)}
    if isinstance(value, float):
        return value if value == value and value not in (float('inf'), float('-inf')) else None
    if isinstance(value, (bytes, bytearray)):
        return {_GB_BYTES_KEY: _gb_latin1(value)}
    if isinstance(value, (list, tuple)):
        return [_gb_wire(v, depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for k in value:
            key = k if isinstance(k, str) else repr(k)
            if key.startswith('\x00'):
                raise GearsError('dict keys starting with U+0000 cannot cross to the host')
            out[key] = _gb_wire(value[k], depth + 1)
        return out
    if isinstance(value, (set, frozenset)):
        return [_gb_wire(v, depth + 1) for v in value]
    return str(value)


def _gb_dumps(value):
    return _gb_json.dumps(value, separators=(',', ':'))


def _gb_host(op, payload='[]'):
    """A blocking host call; `payload` is wire JSON text. Returns the decoded reply."""
    return _gb_decode(_gb_raw_call(op, payload))


# ---- errors as RedisGears reports them ----------------------------------------------------------

def _gb_traceback(e):
    """`Traceback (most recent call last): ...` with the prelude's own frames left out."""
    buf = _gb_io.StringIO()
    _gb_sys.print_exception(e, buf)
    lines = []
    for line in buf.getvalue().split('\n'):
        if line.startswith('  File "<stdin>"') or line.startswith('  File "gearbox'):
            continue
        lines.append(line)
    text = '\n'.join(lines).rstrip('\n')
    return text.replace(" isn't defined", ' is not defined')


def _gb_type_name(e):
    t = type(e)
    if t is GearsError or t is _GbFlatError:
        return 'gears.error'
    return t.__name__


def _gb_message(e):
    try:
        text = str(e)
    except BaseException:
        text = '(unprintable exception)'
    return text.replace(" isn't defined", ' is not defined')


def _gb_format_error(e):
    """The text an error leaves in an errors list: flat errors verbatim, else the traceback."""
    if isinstance(e, _GbFlatError):
        return _gb_message(e)
    try:
        return _gb_traceback(e)
    except BaseException:
        return _gb_type_name(e) + ': ' + _gb_message(e)


def _gb_failure(e):
    """Wire JSON of a failure for the engine: [name, message, traceback, code]."""
    code = getattr(e, 'code', None)
    try:
        tb = _gb_traceback(e)
    except BaseException:
        tb = None
    return _gb_dumps([_gb_type_name(e), _gb_message(e), tb, code if isinstance(code, str) else None])


# ---- state shared by the prelude files ----------------------------------------------------------

_gb_state = {'async_allowed': False, 'outcome': None}
_gb_entries = {}
_gb_user = {'__name__': '__main__'}


def _gb_export(name, value):
    """Makes `value` a global of the user's script."""
    _gb_user[name] = value
    return value


_gb_export('GearsError', GearsError)
