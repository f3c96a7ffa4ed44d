/** What a promise rejected with: its `code`, message and the error itself (throws when it resolved). */
export async function rejection(p: Promise<unknown>): Promise<{ code: string | undefined; message: string; error: unknown }> {
  try {
    await p
  } catch (error) {
    return { code: (error as { code?: string }).code, message: (error as Error).message, error }
  }
  throw new Error('expected a rejection')
}
