# RedisGears 1.2: createFuture / setFutureResults / runCoroutine at the top level.
f = createFuture()

async def produce():
    return 21

async def consume():
    value = await f
    execute('SET', '{py}:future', value * 2)

runCoroutine(consume())
runCoroutine(produce(), f)


import asyncio


async def later(value):
    await asyncio.sleep(0.01)
    await asyncio.sleep(0)
    return value


async def both():
    a, b = await asyncio.gather(later(1), later(2))
    task = asyncio.create_task(later(3))
    c = await task
    execute('SET', '{py}:gathered', a + b + c)

runCoroutine(both())
