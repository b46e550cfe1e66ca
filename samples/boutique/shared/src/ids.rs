//! Random ids, from `wasi:random` (the host's secure random source): order
//! and transaction ids as version-4 UUIDs, as Online Boutique makes them.

/// A random 64-bit number.
pub fn random_u64() -> u64 {
    wasip2::random::random::get_random_u64()
}

/// A random version-4 UUID, such as `1b4e28ba-2fa1-4d2e-883f-0016d3cca427`.
pub fn uuid() -> String {
    uuid_of(random_u64(), random_u64())
}

/// The version-4 UUID made of these 128 random bits.
fn uuid_of(high: u64, low: u64) -> String {
    let high = (high & !0xf000) | 0x4000;
    let low = (low & !(0xc << 60)) | (0x8 << 60);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_uuid_has_its_version_and_variant() {
        let id = super::uuid_of(u64::MAX, u64::MAX);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(super::uuid_of(0, 0), "00000000-0000-4000-8000-000000000000");
    }
}
