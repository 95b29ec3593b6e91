// Reading the artifact's .npy vectors (popular items, seen-items CSR): NumPy's format 1.0-3.0,
// little-endian integer dtypes, C order, one dimension. Anything else is an ArtifactError
// naming the file; nothing here evaluates the header (it is matched, not parsed as code).

import { ArtifactError } from "./errors.js";

const DTYPES = {
  "|i1": Int8Array, "|u1": Uint8Array, "<i2": Int16Array, "<u2": Uint16Array,
  "<i4": Int32Array, "<u4": Uint32Array, "<i8": BigInt64Array, "<u8": BigUint64Array,
};

/**
 * The integer vector stored in `bytes` (a .npy file), as an Int32Array or, for 64-bit
 * files, a Float64Array of exact integers (CSR offsets may exceed 2^31).
 * @param {Uint8Array} bytes
 * @param {string} name file name, for messages
 */
export function readIntVector(bytes, name) {
  const fail = (why) => new ArtifactError(`cannot read ${name}: ${why}`);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) throw fail("not a .npy file");
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen, start;
  if (major === 1) [headerLen, start] = [view.getUint16(8, true), 10];
  else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw fail("truncated header");
    [headerLen, start] = [view.getUint32(8, true), 12];
  } else throw fail(`unsupported .npy version ${major}`);
  if (start + headerLen > bytes.length) throw fail("truncated header");
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr':\s*'([^']*)'/.exec(header);
  const order = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(\s*([0-9]*)\s*,?\s*\)/.exec(header);
  if (!descr || !order || !shape) throw fail(`unreadable header ${JSON.stringify(header.trim()).slice(0, 80)}`);
  const Type = DTYPES[descr[1]];
  if (!Type) throw fail(`must be a 1-D integer array, got dtype ${descr[1]}`);
  if (shape[1] === "") throw fail("must be a 1-D integer array, got a scalar");
  const n = Number(shape[1]);
  const offset = start + headerLen;
  if (bytes.length - offset !== n * Type.BYTES_PER_ELEMENT) {
    throw fail(`holds ${bytes.length - offset} data bytes, its header says ${n} x ${Type.BYTES_PER_ELEMENT}`);
  }
  // a copy: the data is not necessarily aligned for a typed-array view
  const raw = new Type(bytes.slice(offset).buffer);
  if (Type === BigInt64Array || Type === BigUint64Array) {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const x = raw[i];
      if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < -BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`value ${x} out of range`);
      out[i] = Number(x);
    }
    return out;
  }
  return Int32Array.from(raw);
}
