// SHA-256 of a file's bytes: WebCrypto where the page is a secure context (https, localhost,
// 127.0.0.1), else @noble/hashes (plain http on a LAN address has no crypto.subtle).

let noble = null;

/** Lower-case hex SHA-256 of `bytes` (Uint8Array). */
export async function sha256Hex(bytes) {
  const subtle = globalThis.crypto?.subtle;
  let digest;
  if (subtle) {
    digest = new Uint8Array(await subtle.digest("SHA-256", bytes));
  } else {
    noble ??= await import("@noble/hashes/sha2.js");
    digest = noble.sha256(bytes);
  }
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Which implementation sha256Hex uses here ("webcrypto" or "noble"). */
export function sha256Implementation() {
  return globalThis.crypto?.subtle ? "webcrypto" : "noble";
}
