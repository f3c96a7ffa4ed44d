# RedisGears 1.2: createFuture / setFutureResults / runCoroutine at the top level.
f = createFuture()

async def produce():
    return 21

async def consume():
    value = await f
    execute('SET', '{py}:future', value * 2)

runCoroutine(consume())
runCoroutine(produce(), f)
