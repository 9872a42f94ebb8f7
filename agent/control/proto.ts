// Loads control.proto at runtime with the same options the committed generated types
// were produced with (package.json `proto:gen`: longs and enums as strings, defaults
// filled in, oneofs named), so the types in ./generated describe exactly what grpc-js
// hands us. Server and sync client both go through here.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { packageRoot } from '../lib/paths';
import type { ProtoGrpcType } from './generated/control';

/** State-of-the-world Sync: each push is the node's whole view (see control.proto). */
export const NODE_VIEW_TYPE_URL = 'type.weft.dev/weft.policy.v1alpha1.NodeView';
/** Delta Sync: pushes carry the named view resources that changed (see control.proto). */
export const NODE_RESOURCES_TYPE_URL = 'type.weft.dev/weft.policy.v1alpha1.NodeViewResource';

/** Details of the ABORTED status that ends a Sync stream whose hello gave a resource
 *  digest the server's view does not have: reconnect listing initial_resource_versions. */
export const RESEND_INITIAL_VERSIONS = 'resend initial_resource_versions';

/** Metadata keys every RPC carries. */
export const NODE_METADATA_KEY = 'x-weft-node';
export const AUTH_METADATA_KEY = 'authorization';

/** Requests from agents are small (CSRs, registrations, ACKs); anything bigger is abuse. */
export const SERVER_MAX_RECEIVE_BYTES = 256 * 1024;
/** Snapshots for big meshes are large; the client accepts up to this much per message. */
export const CLIENT_MAX_RECEIVE_BYTES = 256 * 1024 * 1024;

let loaded: ProtoGrpcType | undefined;

export function controlProto(): ProtoGrpcType {
  if (loaded) return loaded;
  const def = protoLoader.loadSync(join(packageRoot(), 'agent', 'control', 'proto', 'control.proto'), {
    keepCase: false, longs: String, enums: String, defaults: true, oneofs: true,
  });
  loaded = grpc.loadPackageDefinition(def) as unknown as ProtoGrpcType;
  return loaded;
}

/** SyncResponse.nonce is field 2, length-delimited: its key byte (2 << 3 | 2). */
const NONCE_KEY = 0x12;

/** The nonce field alone, in front of the shared bytes: key, varint length, UTF-8. (By
 *  hand: going through the serializer for one short string per stream cost as much
 *  as the rest of the write.) */
function withNonce(nonce: string, shared: Buffer): Buffer {
  const len = Buffer.byteLength(nonce, 'utf8');
  let varint = 1;
  for (let v = len; v >= 0x80; v >>>= 7) varint++;
  const out = Buffer.allocUnsafe(1 + varint + len + shared.length);
  let at = 0;
  out[at++] = NONCE_KEY;
  let v = len;
  while (v >= 0x80) { out[at++] = (v & 0x7f) | 0x80; v >>>= 7; }
  out[at++] = v;
  at += out.write(nonce, at, 'utf8');
  shared.copy(out, at);
  return out;
}

/**
 * A Sync push encoded once and written to many streams: a change that touches one
 * service sends the same resources to most of a thousand agents, and protobuf encoding
 * (plus building the bodies) per stream was a large part of a fan-out. `shared` is every
 * field but the nonce, encoded by the service's own serializer; the nonce (the one field
 * that differs per stream) is encoded alone and put in front. Protobuf parsers take
 * fields in any order, so the message decodes exactly as the whole object would.
 */
export class PreEncodedSyncResponse {
  constructor(readonly shared: Buffer, readonly nonce: string) {}
}

type SyncMethod = ProtoGrpcType['weft']['control']['v1']['Control']['service']['Sync'];
type SyncResponseFields = Parameters<SyncMethod['responseSerialize']>[0];

let syncService: grpc.ServiceDefinition | undefined;

/** Encodes a SyncResponse without its nonce (for PreEncodedSyncResponse). The field is
 *  left out, not empty: protobufjs writes every field the object has, even '', and a
 *  decoder takes the last occurrence of a field. */
export function encodeSyncResponse(msg: Omit<SyncResponseFields, 'nonce'>): Buffer {
  if ('nonce' in msg) throw new Error('encodeSyncResponse: the nonce is added per stream');
  return Buffer.from(controlProto().weft.control.v1.Control.service.Sync.responseSerialize(msg as SyncResponseFields));
}

/** The Control service definition for the server: as loaded, except that Sync writes
 *  PreEncodedSyncResponse values as their bytes. */
export function controlServiceDefinition(): grpc.ServiceDefinition {
  if (syncService) return syncService;
  const service = controlProto().weft.control.v1.Control.service;
  const serialize = service.Sync.responseSerialize;
  syncService = {
    ...service,
    Sync: {
      ...service.Sync,
      responseSerialize: (v: SyncResponseFields | PreEncodedSyncResponse) => v instanceof PreEncodedSyncResponse
        ? withNonce(v.nonce, v.shared)
        : serialize(v),
    },
  };
  return syncService;
}
