// Original file: agent/control/proto/control.proto

import type { ErrorDetail as _weft_control_v1_ErrorDetail, ErrorDetail__Output as _weft_control_v1_ErrorDetail__Output } from '../../../weft/control/v1/ErrorDetail';

export interface SyncRequest {
  'node'?: (string);
  'versionInfo'?: (string);
  'responseNonce'?: (string);
  'errorDetail'?: (_weft_control_v1_ErrorDetail | null);
  'typeUrl'?: (string);
  'initialResourceVersions'?: ({[key: string]: string});
  'nodeAddress'?: (string);
  'initialResourcesDigest'?: (string);
}

export interface SyncRequest__Output {
  'node': (string);
  'versionInfo': (string);
  'responseNonce': (string);
  'errorDetail': (_weft_control_v1_ErrorDetail__Output | null);
  'typeUrl': (string);
  'initialResourceVersions': ({[key: string]: string});
  'nodeAddress': (string);
  'initialResourcesDigest': (string);
}
