// Original file: agent/control/proto/control.proto

import type { AgentStatus as _weft_control_v1_AgentStatus, AgentStatus__Output as _weft_control_v1_AgentStatus__Output } from '../../../weft/control/v1/AgentStatus';
import type { Rejection as _weft_control_v1_Rejection, Rejection__Output as _weft_control_v1_Rejection__Output } from '../../../weft/control/v1/Rejection';
import type { Long } from '@grpc/proto-loader';

export interface StatusResponse {
  'currentVersion'?: (string);
  'source'?: (string);
  'agents'?: (_weft_control_v1_AgentStatus)[];
  'lastRejection'?: (_weft_control_v1_Rejection | null);
  'currentSinceMs'?: (number | string | Long);
  'registeredWorkloads'?: (number);
  'lastReloadMs'?: (number | string | Long);
  'lastReloadAccepted'?: (boolean);
}

export interface StatusResponse__Output {
  'currentVersion': (string);
  'source': (string);
  'agents': (_weft_control_v1_AgentStatus__Output)[];
  'lastRejection': (_weft_control_v1_Rejection__Output | null);
  'currentSinceMs': (string);
  'registeredWorkloads': (number);
  'lastReloadMs': (string);
  'lastReloadAccepted': (boolean);
}
