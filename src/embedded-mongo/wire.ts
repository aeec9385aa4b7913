// MongoDB wire protocol framing: parses OP_QUERY, OP_MSG and OP_COMPRESSED requests and
// builds OP_REPLY / OP_MSG replies (optionally zlib-compressed).
// https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/

import { deflateSync, inflateSync } from "node:zlib";
import { deserialize, serialize, type Document } from "bson";

export const OP_REPLY = 1;
export const OP_QUERY = 2004;
export const OP_COMPRESSED = 2012;
export const OP_MSG = 2013;

export const HEADER_SIZE = 16;
/** The largest message mongod accepts (maxMessageSizeBytes). */
export const MAX_MESSAGE_SIZE = 48_000_000;

const MSG_CHECKSUM_PRESENT = 1 << 0;
const MSG_MORE_TO_COME = 1 << 1;

export const Compressor = { noop: 0, snappy: 1, zlib: 2, zstd: 3 } as const;
export type CompressorId = (typeof Compressor)[keyof typeof Compressor];

/** Compressors this engine implements, in preference order, as named in the handshake. */
export const SUPPORTED_COMPRESSORS = ["zlib"] as const;

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** The command documents are decoded with bson's default promotions; see values.ts. */
function decodeDocument(buf: Uint8Array, offset: number): { doc: Document; size: number } {
  if (offset + 4 > buf.length) throw new ProtocolError("truncated BSON document");
  const size = readInt32(buf, offset);
  if (size < 5 || offset + size > buf.length) throw new ProtocolError("invalid BSON document length");
  return { doc: deserialize(buf.subarray(offset, offset + size)), size };
}

function readInt32(buf: Uint8Array, offset: number): number {
  return (buf[offset] | (buf[offset + 1] << 8) | (buf[offset + 2] << 16) | (buf[offset + 3] << 24)) | 0;
}

function readCString(buf: Uint8Array, offset: number): { value: string; next: number } {
  const end = buf.indexOf(0, offset);
  if (end < 0) throw new ProtocolError("unterminated cstring");
  return { value: Buffer.from(buf.subarray(offset, end)).toString("utf8"), next: end + 1 };
}

export interface QueryRequest {
  kind: "query";
  requestId: number;
  fullCollectionName: string;
  query: Document;
}

export interface MsgRequest {
  kind: "msg";
  requestId: number;
  /** Body with kind-1 document sequences merged in as array fields. */
  body: Document;
  moreToCome: boolean;
}

export type Request = QueryRequest | MsgRequest;

export interface DecodedFrame {
  request: Request;
  /** The compressor the client used for this message, if it came in OP_COMPRESSED. */
  compressor: CompressorId | null;
  /** Compressed and uncompressed payload sizes, for OP_COMPRESSED frames. */
  compressedBytes?: number;
  uncompressedBytes?: number;
}

/** Parses one complete frame (header included). */
export function decodeFrame(frame: Uint8Array): DecodedFrame {
  if (frame.length < HEADER_SIZE) throw new ProtocolError("message shorter than its header");
  const requestId = readInt32(frame, 4);
  const opCode = readInt32(frame, 12);
  if (opCode === OP_COMPRESSED) {
    const originalOpCode = readInt32(frame, HEADER_SIZE);
    const uncompressedSize = readInt32(frame, HEADER_SIZE + 4);
    const compressorId = frame[HEADER_SIZE + 8] as CompressorId;
    const payload = frame.subarray(HEADER_SIZE + 9);
    let body: Uint8Array;
    if (compressorId === Compressor.zlib) body = inflateSync(payload);
    else if (compressorId === Compressor.noop) body = payload;
    else throw new ProtocolError(`unsupported compressor id ${compressorId}`);
    if (body.length !== uncompressedSize) throw new ProtocolError("decompressed size does not match the header");
    return {
      request: decodeBody(requestId, originalOpCode, body),
      compressor: compressorId,
      compressedBytes: payload.length,
      uncompressedBytes: body.length,
    };
  }
  return { request: decodeBody(requestId, opCode, frame.subarray(HEADER_SIZE)), compressor: null };
}

function decodeBody(requestId: number, opCode: number, body: Uint8Array): Request {
  if (opCode === OP_MSG) return decodeMsg(requestId, body);
  if (opCode === OP_QUERY) return decodeQuery(requestId, body);
  throw new ProtocolError(`unsupported opCode ${opCode}`);
}

function decodeQuery(requestId: number, body: Uint8Array): QueryRequest {
  // flags(int32) fullCollectionName(cstring) numberToSkip(int32) numberToReturn(int32) query [fieldSelector]
  const name = readCString(body, 4);
  const { doc } = decodeDocument(body, name.next + 8);
  return { kind: "query", requestId, fullCollectionName: name.value, query: doc };
}

function decodeMsg(requestId: number, body: Uint8Array): MsgRequest {
  const flags = readInt32(body, 0);
  const end = flags & MSG_CHECKSUM_PRESENT ? body.length - 4 : body.length;
  let offset = 4;
  let command: Document | null = null;
  const sequences: [string, Document[]][] = [];
  while (offset < end) {
    const kind = body[offset++];
    if (kind === 0) {
      const { doc, size } = decodeDocument(body, offset);
      command = doc;
      offset += size;
    } else if (kind === 1) {
      const sectionSize = readInt32(body, offset);
      const sectionEnd = offset + sectionSize;
      const id = readCString(body, offset + 4);
      const docs: Document[] = [];
      let p = id.next;
      while (p < sectionEnd) {
        const { doc, size } = decodeDocument(body, p);
        docs.push(doc);
        p += size;
      }
      sequences.push([id.value, docs]);
      offset = sectionEnd;
    } else {
      throw new ProtocolError(`unknown OP_MSG section kind ${kind}`);
    }
  }
  if (!command) throw new ProtocolError("OP_MSG without a body section");
  for (const [id, docs] of sequences) command[id] = docs;
  return { kind: "msg", requestId, body: command, moreToCome: (flags & MSG_MORE_TO_COME) !== 0 };
}

function header(length: number, requestId: number, responseTo: number, opCode: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_SIZE);
  h.writeInt32LE(length, 0);
  h.writeInt32LE(requestId, 4);
  h.writeInt32LE(responseTo, 8);
  h.writeInt32LE(opCode, 12);
  return h;
}

/** OP_MSG reply with a single kind-0 section. */
export function encodeMsgReply(requestId: number, responseTo: number, doc: Document): Buffer {
  const bson = serialize(doc);
  const prefix = Buffer.allocUnsafe(5);
  prefix.writeInt32LE(0, 0); // flagBits
  prefix[4] = 0; // section kind 0
  return Buffer.concat([header(HEADER_SIZE + 5 + bson.length, requestId, responseTo, OP_MSG), prefix, bson]);
}

/** OP_REPLY carrying one document, the answer to a legacy OP_QUERY command. */
export function encodeOpReply(requestId: number, responseTo: number, doc: Document): Buffer {
  const bson = serialize(doc);
  const fields = Buffer.alloc(20);
  fields.writeInt32LE(0, 0); // responseFlags
  fields.writeBigInt64LE(0n, 4); // cursorID
  fields.writeInt32LE(0, 12); // startingFrom
  fields.writeInt32LE(1, 16); // numberReturned
  return Buffer.concat([header(HEADER_SIZE + 20 + bson.length, requestId, responseTo, OP_REPLY), fields, bson]);
}

/** Wraps an encoded message in OP_COMPRESSED with the given compressor. */
export function compressFrame(frame: Buffer, compressor: CompressorId): Buffer {
  const original = frame.subarray(HEADER_SIZE);
  const payload = compressor === Compressor.zlib ? deflateSync(original) : original;
  const details = Buffer.allocUnsafe(9);
  details.writeInt32LE(frame.readInt32LE(12), 0);
  details.writeInt32LE(original.length, 4);
  details[8] = compressor;
  const h = header(HEADER_SIZE + 9 + payload.length, frame.readInt32LE(4), frame.readInt32LE(8), OP_COMPRESSED);
  return Buffer.concat([h, details, payload]);
}
