// Original file: agent/control/proto/control.proto


export interface ErrorDetail {
  'code'?: (number);
  'message'?: (string);
}

export interface ErrorDetail__Output {
  'code': (number);
  'message': (string);
}
