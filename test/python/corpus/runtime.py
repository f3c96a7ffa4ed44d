# RedisGears 1.2 runtime API, spec §1: atomic, config, hashtag, log, contexts that do not exist here.
with atomic():
    execute('SET', '{py}:a', '1')
    execute('INCR', '{py}:a')
assert execute('GET', '{py}:a') == '2'
try:
    with atomic():
        execute('SET', '{py}:a', '100')
        raise ValueError('inside')
except ValueError as e:
    assert str(e) == 'inside'
assert execute('GET', '{py}:a') == '2'           # the block's writes were dropped
assert configGet('NoSuchKey') is None
assert gearsConfigGet('NoSuchKey', 'fallback') == 'fallback'
assert isinstance(hashtag(), str) and len(hashtag()) > 0
log('from python')
log('with a level', level='warning')
for bad, text in ((lambda: log(), 'log function must get a log message as input'),
                  (lambda: log(1), 'Log message must be a string'),
                  (lambda: log('m', 'loud'), 'Log level should be one of the following : debug,verbose,notice,warning'),
                  (lambda: configGet(), 'get_config function must get a single key input'),
                  (lambda: configGet(1), 'get_config key must be a string'),
                  (lambda: call_next('x'), 'Can not get CommandHook ctx'),
                  (lambda: override_reply('x'), 'Can not get command ctx'),
                  (lambda: flat_error(), 'not enough arguments for time flat error')):
    try:
        bad()
    except GearsError as e:
        assert str(e) == text, str(e)
    else:
        raise Exception('no error for ' + text)
assert isAsyncAllow() is False
