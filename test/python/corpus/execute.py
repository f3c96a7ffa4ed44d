# RedisGears 1.2 runtime API, spec §1: execute() argument and reply conversion.
execute('DEL', '{py}:s', '{py}:n', '{py}:l', '{py}:b')
assert execute('SET', '{py}:s', 'hello') == 'OK'
assert execute('GET', '{py}:s') == 'hello'
assert execute('GET', '{py}:missing') is None
assert execute('SET', '{py}:n', 5) == 'OK'             # ints are sent as str(x)
assert execute('INCRBY', '{py}:n', 2**40) == 2**40 + 5  # integer replies are exact ints
assert execute('RPUSH', '{py}:l', 'a', 'b', None) == 3
assert execute('LRANGE', '{py}:l', 0, -1) == ['a', 'b', 'None']
execute('SET', '{py}:b', b'\xff\x00\x01')
assert execute('GET', '{py}:b') == b'\xff\x00\x01'      # not UTF-8: bytes
assert execute() == []
try:
    execute(1)
except GearsError as e:
    assert str(e) == 'the given command must be a string', str(e)
try:
    execute('LPUSH', '{py}:s', 'x')
except GearsError as e:
    assert str(e).startswith('WRONGTYPE'), str(e)
else:
    raise Exception('WRONGTYPE was not raised')
