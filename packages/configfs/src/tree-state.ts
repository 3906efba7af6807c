/** A tcm_loop target this process created (or adopted on reattach), with the LUNs it put there. */
export interface OwnedTarget {
  readonly luns: Set<number>;
}

/** A device this process created or reattached, as far as the tree state needs it. */
export interface LiveDevice {
  readonly configfsPath: string;
  remove(): Promise<void>;
}

/**
 * What this process holds in one configfs tree: the devices it created or reattached, the tcm_loop
 * targets it made, whether it made the `iscsi` fabric folder, and the lock that orders its structural
 * changes to the tree. Every configfs call reaches it through its `Context` (see `resolveRoots`).
 */
export class TreeState {
  /** Devices this process created or reattached and has not removed, by configfs path. */
  readonly devices = new Map<string, LiveDevice>();
  /** tcm_loop targets this process made (it may add LUNs to them and removes them when emptied), by path. */
  readonly loopbackTargets = new Map<string, OwnedTarget>();
  /** This process made the `iscsi` fabric folder: the last export it removes takes the folder too. */
  iscsiFabricCreated = false;
  #tail: Promise<unknown> = Promise.resolve();

  /**
   * Runs `work` after every change this process queued on the tree before it has settled: structural
   * changes (mkdir/rmdir/link of shared folders) of one process never interleave. Other processes are
   * handled lock-free (see `mkdirInShared`).
   */
  lock<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(work, work);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}

/**
 * The one process-global table of this package: the state of each configfs tree, by its root. It must
 * be process-global: what it records is what *this process* made (ownership in configfs is by process:
 * dev_config carries the pid), and every call (createUserDevice, removeDevice, exportIscsi, …) resolves
 * its roots anew, so two calls naming the same tree must find the same devices, targets and lock. An
 * entry is kept for the life of the process (so objects made earlier never see a second lock): a
 * process uses one tree, tests one per fake kernel.
 */
const trees = new Map<string, TreeState>();

/** The state of the configfs tree at `configfsRoot` in this process (made on first use). */
export function treeState(configfsRoot: string): TreeState {
  let state = trees.get(configfsRoot);
  if (!state) {
    state = new TreeState();
    trees.set(configfsRoot, state);
  }
  return state;
}
