/**
 * How a reconcile stops short without failing its hook: Waiting for something that comes by
 * itself (the unit status says what), Blocked on something only the user can fix.
 */
export class Waiting extends Error {}
export class Blocked extends Error {}
