//! What more than one fuzz target needs: the claims as a token carries them. Owns no state and
//! never touches disk; the targets themselves are in `fuzz_targets/`.

use precis::token::{Claims, MAX_FIELD_LEN};

/// `claims` as a token carries them: string fields cut to [`MAX_FIELD_LEN`] bytes at a char
/// boundary, as [`precis::token::Keys::sign`] documents.
pub fn clipped(claims: &Claims) -> Claims {
    let clip = |s: &String| s[..s.floor_char_boundary(MAX_FIELD_LEN)].to_owned();
    Claims {
        bid: clip(&claims.bid),
        request: clip(&claims.request),
        imp: clip(&claims.imp),
        campaign: clip(&claims.campaign),
        creative: clip(&claims.creative),
        cur: clip(&claims.cur),
        country: claims.country.as_ref().map(clip),
        os: claims.os.as_ref().map(clip),
        ..claims.clone()
    }
}
