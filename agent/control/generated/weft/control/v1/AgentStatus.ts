// Original file: agent/control/proto/control.proto

import type { Long } from '@grpc/proto-loader';

export interface AgentStatus {
  'node'?: (string);
  'connected'?: (boolean);
  'ackedVersion'?: (string);
  'sentVersion'?: (string);
  'lastNackVersion'?: (string);
  'lastNackReason'?: (string);
  'lastSeenMs'?: (number | string | Long);
  'auth'?: (string);
}

export interface AgentStatus__Output {
  'node': (string);
  'connected': (boolean);
  'ackedVersion': (string);
  'sentVersion': (string);
  'lastNackVersion': (string);
  'lastNackReason': (string);
  'lastSeenMs': (string);
  'auth': (string);
}
