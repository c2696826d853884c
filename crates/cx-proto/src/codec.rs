//! The gRPC codec of every cx.v1 service: prost's, except that a message
//! that does not decode (a string field that is not UTF-8, a truncated
//! field) is INVALID_ARGUMENT with a `google.rpc.BadRequest` naming the
//! field, as the contract asks for bad input. prost's codec answers
//! INTERNAL, which tells a client the server failed. The generated clients
//! (cxctl, cx-sim, cx-bench) share the codec; a reply they cannot decode
//! stays INTERNAL: only the request types (every cx.v1 request is named
//! `…Request`, no reply is) are the caller's input.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, Clone)]
pub struct InvalidArgumentCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for InvalidArgumentCodec<T, U> {
    fn default() -> Self {
        InvalidArgumentCodec(PhantomData)
    }
}

impl<T, U> Codec for InvalidArgumentCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = InvalidArgumentDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        InvalidArgumentDecoder(ProstCodec::<T, U>::default().decoder())
    }
}

#[derive(Debug, Clone)]
pub struct InvalidArgumentDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for InvalidArgumentDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(decode_error::<U>)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// prost's decoder fails only on the bytes, with INTERNAL: the caller's
/// fault when `U` is a request (a server decoding it), not when it is a
/// reply (a client decoding what a server sent).
fn decode_error<U>(status: Status) -> Status {
    let is_request = std::any::type_name::<U>().ends_with("Request");
    match status.code() {
        Code::Internal if is_request => undecodable(status.message()),
        _ => status,
    }
}

/// INVALID_ARGUMENT for prost's decode error text, e.g. `failed to decode
/// Protobuf message: Interaction.verbatim:
/// SubmitInteractionsRequest.interactions: invalid string value: data is
/// not UTF-8 encoded` (innermost field first): the field is the path of
/// field names from the request down (`interactions.verbatim`), the
/// description what is left.
fn undecodable(message: &str) -> Status {
    let detail = message
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(message);
    let mut path = Vec::new();
    let mut rest = detail;
    while let Some((segment, after)) = rest.split_once(": ") {
        match segment.split_once('.') {
            Some((type_name, field))
                if !type_name.is_empty() && !field.is_empty() && !segment.contains(' ') =>
            {
                path.push(field);
                rest = after;
            }
            _ => break,
        }
    }
    path.reverse();
    let field = path.join(".");
    Status::with_error_details(
        Code::InvalidArgument,
        format!("the request does not decode: {detail}"),
        ErrorDetails::with_bad_request_violation(field, rest),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{Interaction, SubmitInteractionsRequest, Task};

    #[test]
    fn only_a_request_that_does_not_decode_is_the_callers_fault() {
        let internal = || Status::internal("failed to decode Protobuf message: invalid wire type");
        assert_eq!(
            decode_error::<SubmitInteractionsRequest>(internal()).code(),
            Code::InvalidArgument
        );
        assert_eq!(decode_error::<Task>(internal()).code(), Code::Internal);
        let other = decode_error::<SubmitInteractionsRequest>(Status::cancelled("gone"));
        assert_eq!(other.code(), Code::Cancelled);
    }

    #[test]
    fn a_string_that_is_not_utf8_is_invalid_argument_naming_its_field() {
        let request = SubmitInteractionsRequest {
            interactions: vec![Interaction {
                verbatim: Some("ok".into()),
                ..Default::default()
            }],
        };
        let mut bytes = request.encode_to_vec();
        // The verbatim's two bytes close the message: make them not UTF-8.
        let len = bytes.len();
        bytes[len - 2..].copy_from_slice(&[0xff, 0xfe]);
        let error = SubmitInteractionsRequest::decode(bytes.as_slice()).unwrap_err();
        let status = undecodable(&format!("{error}"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let violations = status
            .get_details_bad_request()
            .expect("BadRequest")
            .field_violations;
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "interactions.verbatim");
        assert!(
            violations[0].description.contains("UTF-8"),
            "{}",
            violations[0].description
        );
    }
}
