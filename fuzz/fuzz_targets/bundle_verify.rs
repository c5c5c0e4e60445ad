//! Bundles from the network. First byte even: the bytes as received (signature check first).
//! Odd: the rest is a body sealed with the trusted key, so the fuzzer reaches the header and
//! payload parser behind the signature. Neither may panic or accept a bundle whose payload
//! hash, lengths or labels are inconsistent.
#![no_main]

use ed25519_dalek::SigningKey;
use facegate_models::bundle::{seal, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&[42; 32]);
    let trusted = [key.verifying_key()];
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let _ = verify(rest, &trusted);
    } else if let Ok(bundle) = verify(&seal(rest, &key), &trusted) {
        assert_eq!(bundle.header.labels.len(), bundle.payload.people.len());
        assert!(bundle.gallery().validate().is_ok());
    }
});
