/**
 * Helpers for backend URLs shown to people and for their paths. Every message, log line and event
 * that shows a backend URL passes it through {@link redactUrl} first.
 */

/** Query parameters whose values are never secret and stay visible in redacted URLs. */
const visibleParameters: ReadonlySet<string> = new Set(['endpoint', 'region', 'chunk', 'size', 'lease']);

/** `//user:password@` (also percent-encoded inside a parameter value) becomes `//***@`. */
function redactUserinfo(text: string): string {
  return text.replace(/\/\/[^/?#@]*@/g, '//***@');
}

/**
 * A URL with every credential it may carry replaced by `***`: the user-info part (`s3://KEY:SECRET@b`,
 * also inside an `endpoint=` value) and the value of every query parameter except the harmless ones
 * (`endpoint`, `region`, `chunk`, `size`, `lease`), e.g. `secret_access_key=…`, `X-Amz-Signature=…`. Works on
 * any text, well-formed or not: it never throws, and text without credentials comes back unchanged.
 */
export function redactUrl(text: string): string {
  const hash = text.indexOf('#');
  const body = hash === -1 ? text : text.slice(0, hash);
  const fragment = hash === -1 ? '' : '#***';
  const question = body.indexOf('?');
  if (question === -1) return redactUserinfo(body) + fragment;
  const parameters = body
    .slice(question + 1)
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=');
      if (equals === -1) return pair;
      const name = pair.slice(0, equals);
      let decodedName = name;
      try {
        decodedName = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {}
      if (!visibleParameters.has(decodedName.toLowerCase())) return `${name}=***`;
      const value = pair.slice(equals + 1);
      let decoded = value;
      try {
        decoded = decodeURIComponent(value.replace(/\+/g, ' '));
      } catch {}
      return redactUserinfo(decoded) === decoded ? pair : `${name}=${redactUserinfo(decoded)}`;
    });
  return `${redactUserinfo(body.slice(0, question))}?${parameters.join('&')}${fragment}`;
}

/**
 * Splits a URL path (as written, still percent-encoded, without its leading `/`) into decoded
 * segments, refusing whatever would not come back the same when the segments are joined and encoded
 * again: empty segments (`a//b`), `.` and `..` (also encoded), an encoded `/` inside a segment, bad
 * `%` escapes and control characters. A single trailing `/` is allowed. Returns the reason for a
 * refusal as a string (the caller wraps it in its own error), or the segments.
 */
export function splitUrlPath(path: string): string[] | { readonly refused: string } {
  const raw = path.endsWith('/') ? path.slice(0, -1) : path;
  if (raw === '') return { refused: 'the path is empty' };
  const segments: string[] = [];
  for (const part of raw.split('/')) {
    let segment: string;
    try {
      segment = decodeURIComponent(part);
    } catch {
      return { refused: 'the path has a bad %-escape' };
    }
    if (segment === '') return { refused: 'the path has an empty segment (//)' };
    if (segment === '.' || segment === '..') return { refused: `the path has a "${segment}" segment` };
    if (segment.includes('/')) return { refused: 'the path has an encoded "/" (%2F) inside a segment' };
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point.
    if (/[\u0000-\u001f\u007f]/.test(segment)) return { refused: 'the path has a control character' };
    segments.push(segment);
  }
  return segments;
}

/** The inverse of {@link splitUrlPath}: segments percent-encoded where needed and joined with `/`. */
export function joinUrlPath(segments: readonly string[]): string {
  return segments.map((s) => encodeURIComponent(s).replace(/%40/g, '@').replace(/%3A/gi, ':')).join('/');
}
