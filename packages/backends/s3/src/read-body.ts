// The one reader of a whole response body from a stream: the https path (node:https) and the SDK's
// path (`S3BackendOptions.client`) both use it. `http:` endpoints read bodies in place instead
// (http-connection.ts).

/** A response body as node:https and the SDK hand it over: chunks, and a way to stop the transfer. */
export type BodyStream = AsyncIterable<Uint8Array> & { destroy?: (error?: Error) => void };

const cut = (message: string) => Object.assign(new Error(message), { code: 'ECONNRESET' });

/**
 * Reads `stream` whole. With a `contentLength` the body goes into one buffer of that length as it
 * arrives (no list of pieces, one copy); without, the pieces are joined at the end. A body longer
 * or shorter than announced fails with code ECONNRESET, like a cut connection: `classifyError` makes
 * that a transient StoreError naming the request, so it is tried again. An abort of `signal`
 * destroys the stream.
 */
export async function readBody(
  stream: BodyStream,
  contentLength: number | undefined,
  signal?: AbortSignal,
): Promise<Buffer> {
  const onAbort = () => stream.destroy?.(Object.assign(new Error('aborted'), { name: 'AbortError' }));
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (contentLength !== undefined) {
      const out = Buffer.allocUnsafe(contentLength);
      let position = 0;
      for await (const piece of stream) {
        // Leaving the loop by a throw destroys the stream (and its connection).
        if (position + piece.byteLength > contentLength)
          throw cut('the server sent more than its Content-Length');
        out.set(piece, position);
        position += piece.byteLength;
      }
      if (position !== contentLength) throw cut(`short body: ${position} of ${contentLength} bytes arrived`);
      return out;
    }
    const pieces: Uint8Array[] = [];
    let total = 0;
    for await (const piece of stream) {
      pieces.push(piece);
      total += piece.byteLength;
    }
    return Buffer.concat(pieces, total);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
