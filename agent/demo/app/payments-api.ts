// The shop.Payments gRPC API, loaded from payments.proto (kept next to the sources and
// found from the package root, so it works from both the sources and dist/).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { packageRoot } from '../../lib/paths';

export interface ChargeRequest { order: string; cents: number }
export interface ChargeReply { payment: string; by: string }

type PaymentsClient = grpc.Client & {
  Charge(req: ChargeRequest, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, reply?: ChargeReply) => void): grpc.ClientUnaryCall;
};

interface PaymentsPackage {
  shop: { Payments: grpc.ServiceClientConstructor };
}

function load(): PaymentsPackage {
  const def = protoLoader.loadSync(join(packageRoot(), 'agent', 'demo', 'app', 'payments.proto'), { longs: Number, defaults: true });
  return grpc.loadPackageDefinition(def) as unknown as PaymentsPackage;
}

export function paymentsService(): grpc.ServiceDefinition {
  return load().shop.Payments.service;
}

/** A client for host:port (a Service VIP: the mesh decides where it goes). */
export function paymentsClient(target: string): PaymentsClient {
  const Ctor = load().shop.Payments;
  return new Ctor(target, grpc.credentials.createInsecure()) as unknown as PaymentsClient;
}

/** One Charge with a deadline; resolves with the gRPC status code (0 = OK). */
export function charge(client: PaymentsClient, order: string, timeoutMs: number): Promise<{ code: number; reply?: ChargeReply; details?: string }> {
  return new Promise((resolve) => {
    client.Charge({ order, cents: 1299 }, { deadline: Date.now() + timeoutMs }, (err, reply) => {
      resolve(err ? { code: err.code, details: err.details } : { code: 0, ...(reply ? { reply } : {}) });
    });
  });
}
