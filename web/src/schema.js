// A validator for the subset of JSON Schema that manifest.schema.json uses: the JavaScript
// twin of runtime/schema.py (same keywords, same order, same first error), so the browser and
// the Python runtime accept exactly the same manifests. See runtime/schema.py for the subset.
// One difference JSON.parse forces: JavaScript cannot tell 1.0 from 1, so "integer" accepts
// both here while Python refuses 1.0.

const TEMPLATE = /\{(value|path|key|type|\/[^{}]*)\}/g;
const IGNORED = new Set(["$schema", "$id", "title", "$comment", "$defs", "errorMessage", "then", "else"]);
const MISSING = Symbol("missing");

const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isNumber = (v) => typeof v === "number" && Number.isFinite(v);

const TYPES = {
  object: isObject,
  array: Array.isArray,
  string: (v) => typeof v === "string",
  integer: (v) => Number.isInteger(v),
  number: isNumber,
  boolean: (v) => typeof v === "boolean",
  null: (v) => v === null,
};

/** Equality of JSON values (true is not 1). */
export function jsonEqual(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (isObject(a) || isObject(b)) {
    if (!isObject(a) || !isObject(b)) return false;
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => has(b, k) && jsonEqual(a[k], b[k]));
  }
  return a === b;
}

function typeName(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

const regexCache = new Map();
function regex(pattern) {
  let r = regexCache.get(pattern);
  if (!r) regexCache.set(pattern, (r = new RegExp(pattern)));
  return r;
}

/** The message of the first rule `instance` breaks, or null if it is valid. */
export function firstError(instance, schema) {
  return new Validator(instance, schema).run();
}

class Validator {
  constructor(root, schema) {
    this.root = root;
    this.schema = schema;
  }

  run() {
    const fail = this.check(this.root, this.schema, []);
    if (fail === null) return null;
    return fail.message ?? "does not match the manifest schema";
  }

  pointer(ptr, doc = this.root) {
    let v = doc;
    const parts = ptr === "" || ptr === "/" ? [] : ptr.replace(/^\//, "").split("/");
    for (let part of parts) {
      part = part.replaceAll("~1", "/").replaceAll("~0", "~");
      if (isObject(v) && has(v, part)) v = v[part];
      else if (Array.isArray(v) && /^[0-9]+$/.test(part) && Number(part) < v.length) v = v[Number(part)];
      else return MISSING;
    }
    return v;
  }

  data(x) {
    if (isObject(x) && Object.keys(x).length === 1 && has(x, "$data")) return this.pointer(x.$data);
    return x;
  }

  message(template, v, path) {
    return template.replace(TEMPLATE, (_, name) => {
      if (name === "value") return show(v);
      if (name === "path") return path.join(".") || "manifest";
      if (name === "key") return path.length ? show(path[path.length - 1]) : '""';
      if (name === "type") return typeName(v);
      const got = this.pointer(name);
      return show(got === MISSING ? null : got);
    });
  }

  check(v, s, path) {
    const fail = this.keywords(v, s, path);
    if (fail !== null && fail.message == null && has(s, "errorMessage")) {
      fail.message = this.message(s.errorMessage, v, path);
    }
    return fail;
  }

  keywords(v, s, path) {
    for (const kw of Object.keys(s)) {
      if (IGNORED.has(kw)) continue;
      const fail = this.keyword(kw, s[kw], v, s, path);
      if (fail !== null) return fail;
    }
    return null;
  }

  keyword(kw, arg, v, s, path) {
    const bad = () => ({ message: null });
    switch (kw) {
      case "$ref":
        return this.check(v, this.pointer(arg.replace(/^#/, ""), this.schema), path);
      case "type":
        return (Array.isArray(arg) ? arg : [arg]).some((t) => TYPES[t](v)) ? null : bad();
      case "const": {
        const want = this.data(arg);
        return want !== MISSING && jsonEqual(v, want) ? null : bad();
      }
      case "enum":
        return arg.some((x) => jsonEqual(v, x)) ? null : bad();
      case "minimum":
      case "maximum":
      case "exclusiveMaximum": {
        if (!isNumber(v)) return null;
        const lim = this.data(arg);
        if (!isNumber(lim)) return bad();
        const ok = kw === "minimum" ? v >= lim : kw === "maximum" ? v <= lim : v < lim;
        return ok ? null : bad();
      }
      case "minLength":
        // Python counts code points; so does the string iterator
        return typeof v !== "string" || [...v].length >= arg ? null : bad();
      case "pattern":
        return typeof v !== "string" || regex(arg).test(v) ? null : bad();
      case "x-in": {
        const target = this.pointer(arg);
        if (isObject(target)) return typeof v === "string" && has(target, v) ? null : bad();
        if (Array.isArray(target)) return target.some((x) => jsonEqual(v, x)) ? null : bad();
        return bad();
      }
      default:
        break;
    }
    if (isObject(v)) {
      const fail = this.objectKeyword(kw, arg, v, s, path);
      if (fail !== null) return fail;
    }
    if (Array.isArray(v)) {
      const fail = this.arrayKeyword(kw, arg, v, path);
      if (fail !== null) return fail;
    }
    if (kw === "allOf") {
      for (const sub of arg) {
        const fail = this.check(v, sub, path);
        if (fail !== null) return fail;
      }
    } else if (kw === "anyOf") {
      const fails = arg.map((sub) => this.check(v, sub, path));
      if (fails.every((f) => f !== null)) return fails[fails.length - 1];
    } else if (kw === "if") {
      const branch = this.check(v, arg, path) === null ? "then" : "else";
      if (has(s, branch)) return this.check(v, s[branch], path);
    }
    return null;
  }

  missing(name, s, path) {
    const sub = s.properties && has(s.properties, name) ? s.properties[name] : undefined;
    const fail = sub !== undefined ? this.check(null, sub, [...path, name]) : null;
    return fail ?? { message: `${[...path, name].join(".")} is missing` };
  }

  objectKeyword(kw, arg, v, s, path) {
    if (kw === "properties") {
      const required = s.required ?? [];
      for (const name of Object.keys(arg)) {
        let fail;
        if (has(v, name)) fail = this.check(v[name], arg[name], [...path, name]);
        else if (required.includes(name)) fail = this.missing(name, s, path);
        else continue;
        if (fail !== null) return fail;
      }
    } else if (kw === "required") {
      for (const name of arg) if (!has(v, name)) return this.missing(name, s, path);
    } else if (kw === "additionalProperties") {
      const known = s.properties ?? {};
      for (const name of Object.keys(v)) {
        if (has(known, name)) continue;
        if (arg === false) return { message: null };
        const fail = this.check(v[name], arg, [...path, name]);
        if (fail !== null) return fail;
      }
    } else if (kw === "propertyNames") {
      for (const name of Object.keys(v)) {
        const fail = this.check(name, arg, [...path, name]);
        if (fail !== null) return fail;
      }
    }
    return null;
  }

  arrayKeyword(kw, arg, v, path) {
    if (kw === "minItems") return v.length >= arg ? null : { message: null };
    if (kw === "maxItems") return v.length <= arg ? null : { message: null };
    if (kw === "uniqueItems") {
      if (!arg) return null;
      for (let i = 0; i < v.length; i++) for (let j = 0; j < i; j++) if (jsonEqual(v[i], v[j])) return { message: null };
      return null;
    }
    if (kw === "items" || kw === "prefixItems") {
      const n = kw === "items" ? v.length : Math.min(v.length, arg.length);
      for (let i = 0; i < n; i++) {
        const fail = this.check(v[i], kw === "items" ? arg : arg[i], [...path, String(i)]);
        if (fail !== null) return fail;
      }
    }
    if (kw === "contains") return v.some((x) => this.check(x, arg, path) === null) ? null : { message: null };
    return null;
  }
}

function show(x) {
  let r;
  try {
    r = JSON.stringify(x);
  } catch {
    r = undefined;
  }
  return r === undefined ? String(x) : r;
}
