// Original file: agent/control/proto/control.proto


export interface DeregisterWorkloadRequest {
  'name'?: (string);
  'namespace'?: (string);
  'node'?: (string);
}

export interface DeregisterWorkloadRequest__Output {
  'name': (string);
  'namespace': (string);
  'node': (string);
}
