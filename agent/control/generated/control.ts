import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { AgentStatus as _weft_control_v1_AgentStatus, AgentStatus__Output as _weft_control_v1_AgentStatus__Output } from './weft/control/v1/AgentStatus';
import type { ControlClient as _weft_control_v1_ControlClient, ControlDefinition as _weft_control_v1_ControlDefinition } from './weft/control/v1/Control';
import type { DeregisterWorkloadRequest as _weft_control_v1_DeregisterWorkloadRequest, DeregisterWorkloadRequest__Output as _weft_control_v1_DeregisterWorkloadRequest__Output } from './weft/control/v1/DeregisterWorkloadRequest';
import type { DeregisterWorkloadResponse as _weft_control_v1_DeregisterWorkloadResponse, DeregisterWorkloadResponse__Output as _weft_control_v1_DeregisterWorkloadResponse__Output } from './weft/control/v1/DeregisterWorkloadResponse';
import type { ErrorDetail as _weft_control_v1_ErrorDetail, ErrorDetail__Output as _weft_control_v1_ErrorDetail__Output } from './weft/control/v1/ErrorDetail';
import type { ExplainRequest as _weft_control_v1_ExplainRequest, ExplainRequest__Output as _weft_control_v1_ExplainRequest__Output } from './weft/control/v1/ExplainRequest';
import type { ExplainResponse as _weft_control_v1_ExplainResponse, ExplainResponse__Output as _weft_control_v1_ExplainResponse__Output } from './weft/control/v1/ExplainResponse';
import type { RegisterWorkloadRequest as _weft_control_v1_RegisterWorkloadRequest, RegisterWorkloadRequest__Output as _weft_control_v1_RegisterWorkloadRequest__Output } from './weft/control/v1/RegisterWorkloadRequest';
import type { RegisterWorkloadResponse as _weft_control_v1_RegisterWorkloadResponse, RegisterWorkloadResponse__Output as _weft_control_v1_RegisterWorkloadResponse__Output } from './weft/control/v1/RegisterWorkloadResponse';
import type { Rejection as _weft_control_v1_Rejection, Rejection__Output as _weft_control_v1_Rejection__Output } from './weft/control/v1/Rejection';
import type { Resource as _weft_control_v1_Resource, Resource__Output as _weft_control_v1_Resource__Output } from './weft/control/v1/Resource';
import type { SignCertificateRequest as _weft_control_v1_SignCertificateRequest, SignCertificateRequest__Output as _weft_control_v1_SignCertificateRequest__Output } from './weft/control/v1/SignCertificateRequest';
import type { SignCertificateResponse as _weft_control_v1_SignCertificateResponse, SignCertificateResponse__Output as _weft_control_v1_SignCertificateResponse__Output } from './weft/control/v1/SignCertificateResponse';
import type { StatusRequest as _weft_control_v1_StatusRequest, StatusRequest__Output as _weft_control_v1_StatusRequest__Output } from './weft/control/v1/StatusRequest';
import type { StatusResponse as _weft_control_v1_StatusResponse, StatusResponse__Output as _weft_control_v1_StatusResponse__Output } from './weft/control/v1/StatusResponse';
import type { SyncRequest as _weft_control_v1_SyncRequest, SyncRequest__Output as _weft_control_v1_SyncRequest__Output } from './weft/control/v1/SyncRequest';
import type { SyncResponse as _weft_control_v1_SyncResponse, SyncResponse__Output as _weft_control_v1_SyncResponse__Output } from './weft/control/v1/SyncResponse';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  weft: {
    control: {
      v1: {
        AgentStatus: MessageTypeDefinition<_weft_control_v1_AgentStatus, _weft_control_v1_AgentStatus__Output>
        Control: SubtypeConstructor<typeof grpc.Client, _weft_control_v1_ControlClient> & { service: _weft_control_v1_ControlDefinition }
        DeregisterWorkloadRequest: MessageTypeDefinition<_weft_control_v1_DeregisterWorkloadRequest, _weft_control_v1_DeregisterWorkloadRequest__Output>
        DeregisterWorkloadResponse: MessageTypeDefinition<_weft_control_v1_DeregisterWorkloadResponse, _weft_control_v1_DeregisterWorkloadResponse__Output>
        ErrorDetail: MessageTypeDefinition<_weft_control_v1_ErrorDetail, _weft_control_v1_ErrorDetail__Output>
        ExplainRequest: MessageTypeDefinition<_weft_control_v1_ExplainRequest, _weft_control_v1_ExplainRequest__Output>
        ExplainResponse: MessageTypeDefinition<_weft_control_v1_ExplainResponse, _weft_control_v1_ExplainResponse__Output>
        RegisterWorkloadRequest: MessageTypeDefinition<_weft_control_v1_RegisterWorkloadRequest, _weft_control_v1_RegisterWorkloadRequest__Output>
        RegisterWorkloadResponse: MessageTypeDefinition<_weft_control_v1_RegisterWorkloadResponse, _weft_control_v1_RegisterWorkloadResponse__Output>
        Rejection: MessageTypeDefinition<_weft_control_v1_Rejection, _weft_control_v1_Rejection__Output>
        Resource: MessageTypeDefinition<_weft_control_v1_Resource, _weft_control_v1_Resource__Output>
        SignCertificateRequest: MessageTypeDefinition<_weft_control_v1_SignCertificateRequest, _weft_control_v1_SignCertificateRequest__Output>
        SignCertificateResponse: MessageTypeDefinition<_weft_control_v1_SignCertificateResponse, _weft_control_v1_SignCertificateResponse__Output>
        StatusRequest: MessageTypeDefinition<_weft_control_v1_StatusRequest, _weft_control_v1_StatusRequest__Output>
        StatusResponse: MessageTypeDefinition<_weft_control_v1_StatusResponse, _weft_control_v1_StatusResponse__Output>
        SyncRequest: MessageTypeDefinition<_weft_control_v1_SyncRequest, _weft_control_v1_SyncRequest__Output>
        SyncResponse: MessageTypeDefinition<_weft_control_v1_SyncResponse, _weft_control_v1_SyncResponse__Output>
      }
    }
  }
}

