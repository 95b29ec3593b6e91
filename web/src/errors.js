// The runtime's errors: one hierarchy, one readable line each (as runtime/errors.py).
// A page catches EdgerecError and knows it has seen every failure the runtime reports on
// purpose: a bad artifact, a bad argument, a missing interpreter.

export class EdgerecError extends Error {
  constructor(message) {
    // One line, always: messages may quote file contents or ids with newlines in them.
    super(String(message).split(/\s+/).filter(Boolean).join(" "));
    this.name = new.target.name;
  }
}

/** The artifact is missing, malformed, from another version or inconsistent. */
export class ArtifactError extends EdgerecError {}

/** A file's SHA-256 does not match the manifest (corrupt, truncated or edited). */
export class ChecksumError extends ArtifactError {}

/** A user or item id is not in the artifact's id maps. */
export class UnknownIdError extends EdgerecError {}

/** An argument has the wrong type or value (k, history, backend name, ...). */
export class InvalidArgumentError extends EdgerecError {}

/** The requested interpreter cannot run here (not shipped, not supported, failed to start). */
export class BackendUnavailable extends EdgerecError {}

/** A short, one-line rendering of any value for messages. */
export function show(x) {
  let r;
  try {
    r = typeof x === "string" ? JSON.stringify(x) : typeof x === "bigint" ? `${x}n` : JSON.stringify(x);
  } catch {
    r = undefined;
  }
  if (r === undefined) r = String(x);
  return r.length <= 60 ? r : r.slice(0, 57) + "...";
}
