/**
 * The states of a chunk held by the write-back cache ({@link withWriteBack}), and the only ways
 * between them. A chunk the write-back does not hold is simply in the store (and maybe in a read
 * cache below): it has no entry and no state.
 *
 * - `clean`: held (e.g. by a compareAndWrite that needs its bytes) and equal to what the store has.
 *   An unheld clean chunk is dropped at once.
 * - `dirty`: modified since the store last took it; waits for its upload (the write-back delay, the
 *   dirty limit or a flush makes it due).
 * - `uploading`: its bytes are being written to the store; nothing modified it since the upload
 *   took them.
 * - `dirty-while-uploading`: modified after the upload took its bytes: when that upload succeeds it
 *   is dirty again (the newer bytes still need one).
 * - `failed`: the last upload failed; retried after a pause. A flush that waits for it reports the
 *   error once (the chunk is then plain dirty again, and retried).
 *
 * Which bytes of a chunk are known (a chunk written before it was ever fetched) is a separate
 * matter, not a state: any state but `clean` may be partial.
 */
export type ChunkState = 'clean' | 'dirty' | 'uploading' | 'dirty-while-uploading' | 'failed';

/** What happens to a chunk. */
export type ChunkEvent =
  /** A write, unmap, writeZeroes or compareAndWrite changed its bytes. */
  | 'modify'
  /** An upload took its bytes. */
  | 'upload'
  /** The store confirmed that upload. */
  | 'stored'
  /** The store refused that upload (after its retries). */
  | 'fail'
  /** A flush reported the failure to its caller. */
  | 'report';

/** The allowed transitions: `chunkTransitions[state][event]` is the next state; absent = not allowed. */
export const chunkTransitions: {
  readonly [S in ChunkState]: Readonly<Partial<Record<ChunkEvent, ChunkState>>>;
} = {
  clean: { modify: 'dirty' },
  dirty: { modify: 'dirty', upload: 'uploading' },
  uploading: { modify: 'dirty-while-uploading', stored: 'clean', fail: 'failed' },
  'dirty-while-uploading': { modify: 'dirty-while-uploading', stored: 'dirty', fail: 'failed' },
  failed: { modify: 'failed', upload: 'uploading', report: 'dirty' },
};

export const chunkStates: readonly ChunkState[] = Object.keys(chunkTransitions) as ChunkState[];
export const chunkEvents: readonly ChunkEvent[] = ['modify', 'upload', 'stored', 'fail', 'report'];

/**
 * The state after `event`. A transition the table does not allow is a bug of the write-back: it
 * throws (a plain Error, never a BackendError, so it is not mistaken for a medium failure).
 */
export function nextChunkState(state: ChunkState, event: ChunkEvent): ChunkState {
  const next = chunkTransitions[state][event];
  if (next === undefined) throw new Error(`write-back: a ${state} chunk cannot ${event}`);
  return next;
}
