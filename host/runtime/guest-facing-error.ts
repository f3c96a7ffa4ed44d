/**
 * An error the guest sees as `GearsError(message)` (wire tag 'e'), with no code: spec error texts
 * and misuse of the runtime API that the prelude cannot check by itself (atomic-block rules).
 * Host-side failures with a code (connection, policy, conflicts) are `GearboxError`s instead.
 */
export class GuestFacingError extends Error {
  override readonly name = 'GuestFacingError'
}
