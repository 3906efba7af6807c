/** Help texts, printed on stdout by `--help` (and by `tcmu` with no command). */

export const MAIN_HELP = `tcmu: serve storage as a real Linux SCSI disk through TCMU (target_core_user + tcm_loop)

Usage: tcmu <command> [options]

Commands:
  serve <backend> --size N   serve a memory, file or S3 backend as /dev/sdX until SIGINT/SIGTERM
  ls                         list the devices this toolkit created, with their state
  rm <name> | --stale        remove a device (stops its server), or every device whose server is gone
  stats <name> [--watch]     a served device's counters (needs serve --metrics)
  demo                       serve a memory disk, mkfs.ext4 it, mount it, write and verify files
  volume create|inspect|delete <s3://bucket/prefix?endpoint=…>
                             administer S3 volumes (no root or kernel needed)

Options:
  -h, --help                 show help (also after every command: tcmu serve --help)
  -v, --version              print the version, and Node's, koffi's and the kernel's

Exit status: 0 success, 1 failure, 2 usage error (bad or missing arguments). Errors are one line on
stderr; under --json they are one JSON object: {"event":"error","code":…,"message":…,"exitCode":…}.

Needs root and a kernel with configfs, target_core_user and tcm_loop. Without them, the repository's
kernel lab runs everything in a Debian kernel under QEMU: tools/lab/run node packages/cli/dist/cli.js …
`;

export const SERVE_HELP = `Usage: tcmu serve <backend> --size <N[K|M|G|T]> [options]

Serves a backend as a SCSI disk until SIGINT or SIGTERM, then drains in-flight commands, tears the
device down (nothing is left in configfs) and exits 0. When the disk is usable it prints one line on
stdout:  ready <name> /dev/sdX /dev/tcmu/<name> [iscsi://…] window <S>s
(with --json: {"event":"ready","name":…,"device":…,"link":…,"metrics":…,"window":{…}}), writes
--pidfile, and sends READY=1 to systemd when NOTIFY_SOCKET is set (Type=notify).

/dev/tcmu/<name> is a link to the disk that keeps its name across restarts (use it in fstab, mkfs,
mount); it is removed at teardown, and by tcmu rm --stale after a crash.

Logs go to stderr: readable coloured lines on a terminal, JSON lines otherwise (or --log-format).

Restart: if the server is killed (kill -9, crash), the disk stays and its I/O waits. Running the
same serve again within the window (--command-timeout) takes the disk over (same /dev/sdX, same
identity; commands in flight are re-sent) and the filesystem on it notices nothing ("taken over"
on the ready line). A server that still runs is never taken over, nor a memory: disk (its data died
with its server). Past the window, I/O fails (EIO);
tcmu rm --stale removes a disk whose server is gone. See docs/restart.md for a systemd unit.

Backends:
  memory:                    a sparse disk in memory, lost on exit
  file:/path/to/image        a regular file, created sparse when missing (its folder must exist);
                             an existing image keeps its size: --size may be left out
  s3://bucket/prefix?endpoint=http://host:port[&region=R]
                             objects in an S3 bucket (needs @tcmu/backend-s3; credentials from
                             AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)

Options:
  -s, --size N               disk size in bytes, with K, M, G or T (powers of 1024): 64M, 1.5G
  -n, --name NAME            device name in configfs (default: the image name, or memory-<pid>)
  -b, --block-size 512|4096  logical block size in bytes (default 512)
      --lun N                tcm_loop LUN, 0-255 (default 0)
      --hba N                configfs HBA number, core/user_<N> (default: chosen by the library)
      --read-only            refuse writes (the disk reports write protection)
      --force-lease          s3:// only: take over the volume's writer lease, left behind by a
                             server that died (kill -9, crash); never while that server still runs
      --queue-depth N        commands in flight at most, 1-1024 (default: chosen by the library)
      --idle-spin-us N       microseconds the server watches for the next command after going idle,
                             before it sleeps, 0-10000 (default 1000, or TCMU_RING_SPIN_US): saves a
                             wake-up per command at low queue depths; 0 never spins (least CPU)
      --command-timeout S    restart window: seconds the kernel holds I/O for a server that died
                             before failing it (cmd_time_out, default 30; 0 = hold forever)
      --scsi-timeout S       the disk's SCSI timeout in seconds (default: command timeout + 15)
      --link-dir DIR         where the stable link goes (default /dev/tcmu)
      --no-link              make no stable link
      --run CMD              run CMD (with /bin/sh -c) once the disk is ready, with TCMU_DEVICE=/dev/sdX,
                             TCMU_LINK=/dev/tcmu/<name> and TCMU_SG_DEVICE set; tear down when it
                             exits and exit with its status (SIGINT/SIGTERM are passed on as SIGTERM)
      --pidfile PATH         write the server's pid to PATH when ready; removed at teardown
      --metrics HOST:PORT    serve Prometheus metrics on http://HOST:PORT/metrics (and /stats.json, read
                             by tcmu ls and tcmu stats): commands, bytes and latency by kind, commands in
                             flight, CHECK CONDITIONs by sense key, TMRs, the backend's own figures
      --json                 print events as JSON lines on stdout (and errors as JSON)
      --log-level LEVEL      trace, debug, info, warn, error, fatal or silent (default info, or
                             TCMU_LOG_LEVEL); trace logs every command (sampled: at most 200 lines/s)
      --log-format FORMAT    auto (pretty on a terminal, else json), pretty or json (or TCMU_LOG_FORMAT)
  -h, --help                 show this help

iSCSI export (LIO's iSCSI target, iscsi_target_mod; the disk stays local too):
      --iscsi [ADDRESS:PORT] also export the disk on that portal; default 127.0.0.1:3260 (this
                             host only): give 0.0.0.0:3260 or an address of this host for others
      --iscsi-iqn IQN        target name (default iqn.2003-01.org.linux-iscsi.tcmu:<name>)
      --iscsi-allow IQN      an initiator allowed to log in (repeatable)
      --iscsi-open           let any initiator log in (one of the two is required)
      --iscsi-chap-user NAME require CHAP; the secret (12-255 characters) is read from
      --iscsi-chap-secret-file PATH, else from $TCMU_ISCSI_CHAP_SECRET (never the command line)

Examples:
  tcmu serve memory: --size 256M
  tcmu serve memory: --size 1G --run 'mkfs.ext4 -q "$TCMU_DEVICE" && fsck.ext4 -n "$TCMU_DEVICE"'
  tcmu serve file:/var/lib/disks/db.img --name db --metrics 127.0.0.1:9464 --pidfile /run/db.pid
  tcmu serve file:/var/lib/disks/db.img --size 10G --block-size 4096 --name db
  tcmu serve 's3://disks/vol1?endpoint=http://127.0.0.1:7480' --size 1G --json
  tcmu serve file:/srv/db.img --name db --iscsi 0.0.0.0:3260 --iscsi-allow iqn.2004-10.com.example:web1
`;

export const LS_HELP = `Usage: tcmu ls [--json]

Lists the devices this toolkit created (marked in their configfs dev_config), with their state:
  serving   the process that created it is alive
  stale     that process is gone (killed); remove it with tcmu rm --stale
and, for a device served by tcmu serve, its backend, block size, read-only flag, uptime and stable
link; with serve --metrics also its live IOPS and throughput (over the last seconds).

Options:
      --json                 print a JSON array instead of a table
  -h, --help                 show this help
`;

export const RM_HELP = `Usage: tcmu rm <name>...
       tcmu rm --stale

Removes devices this toolkit created. A device whose server is alive is asked to stop (SIGTERM), and
tcmu rm waits for it to drain and tear down; a stale device is torn down here, with the stable link
(/dev/tcmu/<name>) and the server record its dead server left behind. Devices not created by this
toolkit are never touched.

Options:
      --stale                remove every device whose server process is gone
      --timeout SECONDS      how long to wait for a live server to stop (default 30)
  -h, --help                 show this help
`;

export const STATS_HELP = `Usage: tcmu stats <name> [--watch] [--interval SECONDS] [--json]

Prints a served device's counters, read from its server's metrics endpoint (so serve it with
--metrics HOST:PORT): commands, bytes and mean latency by kind (read, write, unmap, flush, other),
rates over the last seconds, commands in flight, CHECK CONDITIONs by sense key, task management, and
the backend's own figures (S3: requests, retries, cache hits and misses, dirty chunks…).

Options:
      --watch                print again every interval until interrupted
      --interval SECONDS     seconds between prints with --watch (default 1)
      --json                 print one JSON object per print
  -h, --help                 show this help
`;

export const DEMO_HELP = `Usage: tcmu demo [--here] [--size N] [--block-size 512|4096]

Serves a memory disk from TypeScript, formats it with mkfs.ext4, mounts it, writes files of random
content, syncs, reads them back and compares checksums, shows sg_inq and sg_readcap, unmounts and
tears down; prints a summary with timings and exits 0 only if everything matched.

Runs in the host kernel when it has TCMU; otherwise inside the repository's kernel lab (QEMU), when
tools/lab/run is there.

Options:
      --here                 run in this kernel, never in the lab (fails when it has no TCMU)
  -s, --size N               disk size (default 256M)
  -b, --block-size 512|4096  logical block size (default 512)
      --files N              how many files to write (default 8)
      --file-size N          size of each file (default 1M)
      --log-level LEVEL      library logs on stderr (default warn)
  -h, --help                 show this help
`;

const VOLUME_URL = `Volumes are s3://bucket/prefix?endpoint=http://host:port[&region=R] URLs. Credentials come
only from the AWS chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role
(never from the URL or the command line).`;

export const VOLUME_HELP = `Usage: tcmu volume create <url> --size N [--chunk-size N] [--block-size 512|4096] [--json]
       tcmu volume inspect <url> [--json]
       tcmu volume delete <url> --yes [--force] [--json]
       tcmu volume snapshot <url> NAME [--delete --yes] [--json]
       tcmu volume clone <url>@NAME <new-url> [--json]

Creates, describes, deletes, snapshots and clones the S3 volumes that tcmu serve s3://… serves
(through @tcmu/backend-s3).
Needs no root and no TCMU. Each action takes --help.

${VOLUME_URL}
`;

export const VOLUME_CREATE_HELP = `Usage: tcmu volume create <url> --size N [options]

Creates an empty volume: writes only its description; no chunk is stored until written. Fails when a
volume already exists at that prefix. Prints: created <volume>: <size>, chunk size …, block size …

${VOLUME_URL}

Options:
  -s, --size N               volume size in bytes, with K, M, G or T (powers of 1024): 10G
                             (or size=10G in the URL)
      --chunk-size N         bytes per object, a power of two from 4K to 64M (default 1M, or chunk= in
                             the URL); fixed for the volume's life
  -b, --block-size 512|4096  block size the volume is served with (default 512; serve it with the same)
      --compress deflate     compress each chunk (skipped for a chunk it does not shrink); default none
      --key-file PATH        encrypt (AES-256-GCM) with the key in PATH: 32 bytes, 64 hex digits or
                             base64 (make one: head -c 32 /dev/urandom > key). Serve with ?key_file=PATH
      --key-env NAME         the same with the key in environment variable NAME (hex or base64)
      --json                 print the volume's description as one JSON object
  -h, --help                 show this help
`;

export const VOLUME_INSPECT_HELP = `Usage: tcmu volume inspect <url> [--json]

Prints a volume's size, chunk size, block size, chunks and bytes stored (sparse: never-written and
zeroed chunks store nothing), and its current writer (the lease: host, pid, since) or none.

${VOLUME_URL}

Options:
      --json                 print one JSON object: size, chunkSize, blockSize, chunksStored,
                             bytesStored, lease ({ id, host, pid, since } or null), created, …
  -h, --help                 show this help
`;

export const VOLUME_DELETE_HELP = `Usage: tcmu volume delete <url> --yes [--force]

Deletes a volume: every object under its prefix (chunks, description, lease). Prints what it is
about to delete on stderr, then: deleted <volume>: N objects. Without --yes it only says what it
would delete. While a writer holds the volume's lease it refuses; the lease has no expiry, so after a
writer died (kill -9, crash) add --force.

${VOLUME_URL}

Options:
  -y, --yes                  really delete
      --force                delete even while a writer lease is held, or when the prefix holds no
                             volume description (deletes whatever is under the prefix)
      --json                 print {"event":"deleted","volume":…,"objectsDeleted":N}
  -h, --help                 show this help
`;

export const VOLUME_SNAPSHOT_HELP = `Usage: tcmu volume snapshot <url> NAME [--delete --yes] [--timeout S] [--json]

Takes snapshot NAME of a volume: instant (no data is copied; later writes go to new objects) and
read-only. A volume served read-write is snapshotted by its server, which stops admitting writes,
flushes, records the snapshot and resumes (waits up to --timeout seconds, default 30). Serve a
snapshot with: tcmu serve 's3://bucket/volume@NAME?endpoint=…' --read-only. Clone it with
tcmu volume clone. With --delete --yes, deletes the snapshot and the objects only it needed
(refused while a clone reads it or a server holds the volume).

${VOLUME_URL}

Options:
      --delete               delete snapshot NAME instead (needs --yes)
  -y, --yes                  really delete
      --timeout S            seconds to wait for a serving process (default 30)
      --json                 print one JSON object
  -h, --help                 show this help
`;

export const VOLUME_CLONE_HELP = `Usage: tcmu volume clone <url>@NAME <new-url> [--json]

Creates a new volume from snapshot NAME: instant and copy-on-write (the clone reads unchanged chunks
from its origin and stores only what it writes). Same bucket and server as the origin; encrypted
origins give encrypted clones with the same key. While the clone exists, deleting the snapshot or
the origin volume is refused.

${VOLUME_URL}

Options:
      --json                 print the clone's description as one JSON object
  -h, --help                 show this help
`;
