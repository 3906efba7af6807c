#!/usr/bin/env python3
"""A tiny TCMU ring responder for configfs kernel tests: just enough SCSI (INQUIRY, READ CAPACITY,
MODE SENSE, TEST UNIT READY, READ/WRITE of zeros, SYNCHRONIZE CACHE) for the kernel to probe a LUN
and make /dev/sdX. It serves commands in order and completes them in place. Test code only: the real
ring is @tcmu/ring.

usage: kernel-responder.py /dev/uioN MAP_SIZE BLOCK_SIZE SIZE_BYTES SERIAL
Prints "ready" once mapped; exits on SIGTERM/SIGKILL.
"""
import mmap
import os
import struct
import sys

path, map_size, block_size, size, serial = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, map_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
version, flags, cmdr_off, cmdr_size = struct.unpack_from("<HHII", m, 0)
print("ready", version, hex(flags), cmdr_off, cmdr_size, flush=True)
blocks = size // block_size


def u32(offset):
    return struct.unpack_from("<I", m, offset)[0]


def cdb_length(opcode):
    group = opcode >> 5
    return {0: 6, 1: 10, 2: 10, 4: 16, 5: 12}.get(group, 16)


def sense(key, asc, ascq=0):
    data = bytearray(18)
    data[0], data[2], data[7], data[12], data[13] = 0x70, key, 10, asc, ascq
    return bytes(data)


def respond(cdb):
    """Returns (status, data_in or None, sense or None)."""
    op = cdb[0]
    if op in (0x00, 0x35, 0x91, 0x1E, 0x1B):  # TUR, SYNC CACHE 10/16, PREVENT ALLOW, START STOP
        return 0, None, None
    if op == 0x12:  # INQUIRY
        alloc = (cdb[3] << 8) | cdb[4]
        if cdb[1] & 1:
            page = cdb[2]
            if page == 0x00:
                data = bytes([0, 0, 0, 2, 0x00, 0x80])
            elif page == 0x80:
                s = serial.encode()
                data = bytes([0, 0x80, 0, len(s)]) + s
            else:
                return 2, None, sense(5, 0x24)
        else:
            data = bytes([0, 0, 6, 2, 31, 0, 0, 2]) + b"TCMU-TS " + b"configfs-test   " + b"0001"
        return 0, data[:alloc], None
    if op == 0x25:  # READ CAPACITY 10
        return 0, struct.pack(">II", min(blocks - 1, 0xFFFFFFFF), block_size), None
    if op == 0x9E and (cdb[1] & 0x1F) == 0x10:  # READ CAPACITY 16
        alloc = struct.unpack_from(">I", cdb, 10)[0]
        return 0, (struct.pack(">QI", blocks - 1, block_size) + bytes(20))[:alloc], None
    if op == 0x1A:  # MODE SENSE 6: header only, no write protect, no cache page
        return 0, bytes([3, 0, 0, 0])[: cdb[4]], None
    if op == 0x5A:  # MODE SENSE 10
        alloc = (cdb[7] << 8) | cdb[8]
        return 0, bytes([0, 6, 0, 0, 0, 0, 0, 0])[:alloc], None
    if op == 0x03:  # REQUEST SENSE
        return 0, bytes(18)[: cdb[4]], None
    if op in (0x28, 0x88, 0x08):  # READ: zeros (the data area is zeroed below)
        return 0, b"", None
    if op in (0x2A, 0x8A, 0x0A):  # WRITE: accepted, discarded
        return 0, None, None
    return 2, None, sense(5, 0x20)


while True:
    try:
        os.read(fd, 4)  # blocks until the kernel signals
    except OSError:  # EIO: the device was removed
        sys.exit(0)
    head = u32(12)
    tail = u32(64)
    while tail != head:
        entry = cmdr_off + tail
        len_op = u32(entry)
        op, length = len_op & 7, len_op & ~7
        if op == 1:
            iov_cnt = u32(entry + 8)
            cdb_off = struct.unpack_from("<Q", m, entry + 24)[0]
            cdb = bytes(m[cdb_off : cdb_off + cdb_length(m[cdb_off])])
            iovecs = [struct.unpack_from("<QQ", m, entry + 48 + 16 * i) for i in range(iov_cnt)]
            status, data, sense_data = respond(cdb)
            if data is not None:  # data-in: copy, zero the rest
                data = bytes(data)
                for base, iov_len in iovecs:
                    chunk = data[:iov_len]
                    data = data[iov_len:]
                    m[base : base + iov_len] = chunk + bytes(iov_len - len(chunk))
            m[entry + 8] = status
            if sense_data is not None:
                m[entry + 16 : entry + 16 + len(sense_data)] = sense_data
        elif op not in (0, 2):  # PAD and TMR entries are skipped
            m[entry + 7] = m[entry + 7] | 1  # UNKNOWN_OP
        tail = (tail + length) % cmdr_size
        struct.pack_into("<I", m, 64, tail)
    os.write(fd, b"\0\0\0\0")
