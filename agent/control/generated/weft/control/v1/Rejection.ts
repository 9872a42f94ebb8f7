// Original file: agent/control/proto/control.proto

import type { Long } from '@grpc/proto-loader';

export interface Rejection {
  'revision'?: (string);
  'diagnostics'?: (string)[];
  'atMs'?: (number | string | Long);
}

export interface Rejection__Output {
  'revision': (string);
  'diagnostics': (string)[];
  'atMs': (string);
}
