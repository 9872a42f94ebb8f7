// Original file: agent/control/proto/control.proto


export interface RegisterWorkloadRequest {
  'name'?: (string);
  'namespace'?: (string);
  'serviceAccount'?: (string);
  'labels'?: ({[key: string]: string});
  'address'?: (string);
  'node'?: (string);
  'cgroupId'?: (string);
  'weight'?: (number);
}

export interface RegisterWorkloadRequest__Output {
  'name': (string);
  'namespace': (string);
  'serviceAccount': (string);
  'labels': ({[key: string]: string});
  'address': (string);
  'node': (string);
  'cgroupId': (string);
  'weight': (number);
}
