// Original file: agent/control/proto/control.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { DeregisterWorkloadRequest as _weft_control_v1_DeregisterWorkloadRequest, DeregisterWorkloadRequest__Output as _weft_control_v1_DeregisterWorkloadRequest__Output } from '../../../weft/control/v1/DeregisterWorkloadRequest';
import type { DeregisterWorkloadResponse as _weft_control_v1_DeregisterWorkloadResponse, DeregisterWorkloadResponse__Output as _weft_control_v1_DeregisterWorkloadResponse__Output } from '../../../weft/control/v1/DeregisterWorkloadResponse';
import type { ExplainRequest as _weft_control_v1_ExplainRequest, ExplainRequest__Output as _weft_control_v1_ExplainRequest__Output } from '../../../weft/control/v1/ExplainRequest';
import type { ExplainResponse as _weft_control_v1_ExplainResponse, ExplainResponse__Output as _weft_control_v1_ExplainResponse__Output } from '../../../weft/control/v1/ExplainResponse';
import type { RegisterWorkloadRequest as _weft_control_v1_RegisterWorkloadRequest, RegisterWorkloadRequest__Output as _weft_control_v1_RegisterWorkloadRequest__Output } from '../../../weft/control/v1/RegisterWorkloadRequest';
import type { RegisterWorkloadResponse as _weft_control_v1_RegisterWorkloadResponse, RegisterWorkloadResponse__Output as _weft_control_v1_RegisterWorkloadResponse__Output } from '../../../weft/control/v1/RegisterWorkloadResponse';
import type { SignCertificateRequest as _weft_control_v1_SignCertificateRequest, SignCertificateRequest__Output as _weft_control_v1_SignCertificateRequest__Output } from '../../../weft/control/v1/SignCertificateRequest';
import type { SignCertificateResponse as _weft_control_v1_SignCertificateResponse, SignCertificateResponse__Output as _weft_control_v1_SignCertificateResponse__Output } from '../../../weft/control/v1/SignCertificateResponse';
import type { StatusRequest as _weft_control_v1_StatusRequest, StatusRequest__Output as _weft_control_v1_StatusRequest__Output } from '../../../weft/control/v1/StatusRequest';
import type { StatusResponse as _weft_control_v1_StatusResponse, StatusResponse__Output as _weft_control_v1_StatusResponse__Output } from '../../../weft/control/v1/StatusResponse';
import type { SyncRequest as _weft_control_v1_SyncRequest, SyncRequest__Output as _weft_control_v1_SyncRequest__Output } from '../../../weft/control/v1/SyncRequest';
import type { SyncResponse as _weft_control_v1_SyncResponse, SyncResponse__Output as _weft_control_v1_SyncResponse__Output } from '../../../weft/control/v1/SyncResponse';

export interface ControlClient extends grpc.Client {
  DeregisterWorkload(argument: _weft_control_v1_DeregisterWorkloadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_DeregisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  DeregisterWorkload(argument: _weft_control_v1_DeregisterWorkloadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_control_v1_DeregisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  DeregisterWorkload(argument: _weft_control_v1_DeregisterWorkloadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_DeregisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  DeregisterWorkload(argument: _weft_control_v1_DeregisterWorkloadRequest, callback: grpc.requestCallback<_weft_control_v1_DeregisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  deregisterWorkload(argument: _weft_control_v1_DeregisterWorkloadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_DeregisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  deregisterWorkload(argument: _weft_control_v1_DeregisterWorkloadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_control_v1_DeregisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  deregisterWorkload(argument: _weft_control_v1_DeregisterWorkloadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_DeregisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  deregisterWorkload(argument: _weft_control_v1_DeregisterWorkloadRequest, callback: grpc.requestCallback<_weft_control_v1_DeregisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  
  Explain(argument: _weft_control_v1_ExplainRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  Explain(argument: _weft_control_v1_ExplainRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_control_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  Explain(argument: _weft_control_v1_ExplainRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  Explain(argument: _weft_control_v1_ExplainRequest, callback: grpc.requestCallback<_weft_control_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  explain(argument: _weft_control_v1_ExplainRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  explain(argument: _weft_control_v1_ExplainRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_control_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  explain(argument: _weft_control_v1_ExplainRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  explain(argument: _weft_control_v1_ExplainRequest, callback: grpc.requestCallback<_weft_control_v1_ExplainResponse__Output>): grpc.ClientUnaryCall;
  
  RegisterWorkload(argument: _weft_control_v1_RegisterWorkloadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_RegisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  RegisterWorkload(argument: _weft_control_v1_RegisterWorkloadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_control_v1_RegisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  RegisterWorkload(argument: _weft_control_v1_RegisterWorkloadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_RegisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  RegisterWorkload(argument: _weft_control_v1_RegisterWorkloadRequest, callback: grpc.requestCallback<_weft_control_v1_RegisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  registerWorkload(argument: _weft_control_v1_RegisterWorkloadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_RegisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  registerWorkload(argument: _weft_control_v1_RegisterWorkloadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_control_v1_RegisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  registerWorkload(argument: _weft_control_v1_RegisterWorkloadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_RegisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  registerWorkload(argument: _weft_control_v1_RegisterWorkloadRequest, callback: grpc.requestCallback<_weft_control_v1_RegisterWorkloadResponse__Output>): grpc.ClientUnaryCall;
  
  SignCertificate(argument: _weft_control_v1_SignCertificateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_SignCertificateResponse__Output>): grpc.ClientUnaryCall;
  SignCertificate(argument: _weft_control_v1_SignCertificateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_control_v1_SignCertificateResponse__Output>): grpc.ClientUnaryCall;
  SignCertificate(argument: _weft_control_v1_SignCertificateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_SignCertificateResponse__Output>): grpc.ClientUnaryCall;
  SignCertificate(argument: _weft_control_v1_SignCertificateRequest, callback: grpc.requestCallback<_weft_control_v1_SignCertificateResponse__Output>): grpc.ClientUnaryCall;
  signCertificate(argument: _weft_control_v1_SignCertificateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_SignCertificateResponse__Output>): grpc.ClientUnaryCall;
  signCertificate(argument: _weft_control_v1_SignCertificateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_control_v1_SignCertificateResponse__Output>): grpc.ClientUnaryCall;
  signCertificate(argument: _weft_control_v1_SignCertificateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_SignCertificateResponse__Output>): grpc.ClientUnaryCall;
  signCertificate(argument: _weft_control_v1_SignCertificateRequest, callback: grpc.requestCallback<_weft_control_v1_SignCertificateResponse__Output>): grpc.ClientUnaryCall;
  
  Status(argument: _weft_control_v1_StatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  Status(argument: _weft_control_v1_StatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_control_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  Status(argument: _weft_control_v1_StatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  Status(argument: _weft_control_v1_StatusRequest, callback: grpc.requestCallback<_weft_control_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  status(argument: _weft_control_v1_StatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  status(argument: _weft_control_v1_StatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_control_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  status(argument: _weft_control_v1_StatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_control_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  status(argument: _weft_control_v1_StatusRequest, callback: grpc.requestCallback<_weft_control_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  
  Sync(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_weft_control_v1_SyncRequest, _weft_control_v1_SyncResponse__Output>;
  Sync(options?: grpc.CallOptions): grpc.ClientDuplexStream<_weft_control_v1_SyncRequest, _weft_control_v1_SyncResponse__Output>;
  sync(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_weft_control_v1_SyncRequest, _weft_control_v1_SyncResponse__Output>;
  sync(options?: grpc.CallOptions): grpc.ClientDuplexStream<_weft_control_v1_SyncRequest, _weft_control_v1_SyncResponse__Output>;
  
}

export interface ControlHandlers extends grpc.UntypedServiceImplementation {
  DeregisterWorkload: grpc.handleUnaryCall<_weft_control_v1_DeregisterWorkloadRequest__Output, _weft_control_v1_DeregisterWorkloadResponse>;
  
  Explain: grpc.handleUnaryCall<_weft_control_v1_ExplainRequest__Output, _weft_control_v1_ExplainResponse>;
  
  RegisterWorkload: grpc.handleUnaryCall<_weft_control_v1_RegisterWorkloadRequest__Output, _weft_control_v1_RegisterWorkloadResponse>;
  
  SignCertificate: grpc.handleUnaryCall<_weft_control_v1_SignCertificateRequest__Output, _weft_control_v1_SignCertificateResponse>;
  
  Status: grpc.handleUnaryCall<_weft_control_v1_StatusRequest__Output, _weft_control_v1_StatusResponse>;
  
  Sync: grpc.handleBidiStreamingCall<_weft_control_v1_SyncRequest__Output, _weft_control_v1_SyncResponse>;
  
}

export interface ControlDefinition extends grpc.ServiceDefinition {
  DeregisterWorkload: MethodDefinition<_weft_control_v1_DeregisterWorkloadRequest, _weft_control_v1_DeregisterWorkloadResponse, _weft_control_v1_DeregisterWorkloadRequest__Output, _weft_control_v1_DeregisterWorkloadResponse__Output>
  Explain: MethodDefinition<_weft_control_v1_ExplainRequest, _weft_control_v1_ExplainResponse, _weft_control_v1_ExplainRequest__Output, _weft_control_v1_ExplainResponse__Output>
  RegisterWorkload: MethodDefinition<_weft_control_v1_RegisterWorkloadRequest, _weft_control_v1_RegisterWorkloadResponse, _weft_control_v1_RegisterWorkloadRequest__Output, _weft_control_v1_RegisterWorkloadResponse__Output>
  SignCertificate: MethodDefinition<_weft_control_v1_SignCertificateRequest, _weft_control_v1_SignCertificateResponse, _weft_control_v1_SignCertificateRequest__Output, _weft_control_v1_SignCertificateResponse__Output>
  Status: MethodDefinition<_weft_control_v1_StatusRequest, _weft_control_v1_StatusResponse, _weft_control_v1_StatusRequest__Output, _weft_control_v1_StatusResponse__Output>
  Sync: MethodDefinition<_weft_control_v1_SyncRequest, _weft_control_v1_SyncResponse, _weft_control_v1_SyncRequest__Output, _weft_control_v1_SyncResponse__Output>
}
