// payments: a gRPC server that takes every charge it is sent. It checks nothing about
// the caller itself: who may call it is the mesh's AuthorizationPolicy.
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import type { AppConfig } from './config';
import { paymentsService, type ChargeReply, type ChargeRequest } from './payments-api';

export function startPayments(cfg: AppConfig): Promise<void> {
  const server = new grpc.Server();
  server.addService(paymentsService(), {
    Charge: (_call: grpc.ServerUnaryCall<ChargeRequest, ChargeReply>, cb: grpc.sendUnaryData<ChargeReply>) => cb(null, { payment: randomUUID(), by: cfg.name }),
  });
  return new Promise((resolve, reject) => {
    server.bindAsync(`${cfg.address}:${cfg.port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
  });
}
