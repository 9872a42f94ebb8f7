// Original file: agent/control/proto/control.proto

import type { Long } from '@grpc/proto-loader';

export interface SignCertificateResponse {
  'certChainPem'?: (string)[];
  'trustBundle'?: (string)[];
  'expiresAt'?: (number | string | Long);
}

export interface SignCertificateResponse__Output {
  'certChainPem': (string)[];
  'trustBundle': (string)[];
  'expiresAt': (string);
}
