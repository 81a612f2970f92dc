//! The hardware behind a visitor's device type and OS: real makes and models with their OS
//! versions and the user agents they send (`device.make`, `model`, `osv`, `ua`), and their
//! advertising ids (`device.ifa`, all zeros with `lmt` when the user limits ad tracking).
//! A table and the draws from it, nothing else: which device types and OSes there are is the
//! visitors' to draw, and this module never changes it.

use super::rng::Rng;

/// One device model as a request describes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Hardware {
    /// `device.make`; empty for a PC, whose make a browser does not say.
    pub make: &'static str,
    /// `device.model`; empty for a PC.
    pub model: &'static str,
    /// `device.osv`; empty when the user agent does not say it.
    pub osv: &'static str,
    /// `device.ua`: the browser's, or the web view's of an app.
    pub ua: &'static str,
}

const fn hw(
    make: &'static str,
    model: &'static str,
    osv: &'static str,
    ua: &'static str,
) -> Hardware {
    Hardware {
        make,
        model,
        osv,
        ua,
    }
}

/// The OpenRTB `devicetype`s and the OS of some devices, and their models with weights.
type Models = (&'static [u32], &'static str, &'static [(Hardware, u32)]);

/// The models of each OS on each kind of screen: the current and previous OS versions, and the
/// makes that sell most.
const MODELS: &[Models] = &[
    (
        &[4, 1],
        "iOS",
        &[
            (
                hw(
                    "Apple",
                    "iPhone",
                    "18.1",
                    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                ),
                55,
            ),
            (
                hw(
                    "Apple",
                    "iPhone",
                    "17.5",
                    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                ),
                35,
            ),
            (
                hw(
                    "Apple",
                    "iPhone",
                    "16.7",
                    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
                ),
                10,
            ),
        ],
    ),
    (
        &[4, 1],
        "Android",
        &[
            (
                hw(
                    "Samsung",
                    "SM-S918B",
                    "14",
                    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
                ),
                25,
            ),
            (
                hw(
                    "Samsung",
                    "SM-A546B",
                    "14",
                    "Mozilla/5.0 (Linux; Android 14; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.118 Mobile Safari/537.36",
                ),
                25,
            ),
            (
                hw(
                    "Xiaomi",
                    "2311DRK48C",
                    "14",
                    "Mozilla/5.0 (Linux; Android 14; 2311DRK48C) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.230 Mobile Safari/537.36",
                ),
                20,
            ),
            (
                hw(
                    "Google",
                    "Pixel 8",
                    "15",
                    "Mozilla/5.0 (Linux; Android 15; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.58 Mobile Safari/537.36",
                ),
                15,
            ),
            (
                hw(
                    "OPPO",
                    "CPH2581",
                    "13",
                    "Mozilla/5.0 (Linux; Android 13; CPH2581) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.163 Mobile Safari/537.36",
                ),
                15,
            ),
        ],
    ),
    (
        &[5],
        "iPadOS",
        &[(
            hw(
                "Apple",
                "iPad",
                "17.4",
                "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            ),
            1,
        )],
    ),
    (
        &[5],
        "iOS",
        &[(
            hw(
                "Apple",
                "iPad",
                "16.7",
                "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
            ),
            1,
        )],
    ),
    (
        &[5],
        "Android",
        &[
            (
                hw(
                    "Samsung",
                    "SM-X710",
                    "14",
                    "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Safari/537.36",
                ),
                60,
            ),
            (
                hw(
                    "Lenovo",
                    "TB-X606F",
                    "11",
                    "Mozilla/5.0 (Linux; Android 11; TB-X606F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.5993.111 Safari/537.36",
                ),
                40,
            ),
        ],
    ),
    (
        &[2],
        "Windows",
        &[
            (
                hw(
                    "",
                    "",
                    "10",
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                ),
                70,
            ),
            (
                hw(
                    "",
                    "",
                    "10",
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
                ),
                30,
            ),
        ],
    ),
    (
        &[2],
        "macOS",
        &[
            (
                hw(
                    "Apple",
                    "Macintosh",
                    "10.15.7",
                    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
                ),
                60,
            ),
            (
                hw(
                    "Apple",
                    "Macintosh",
                    "10.15.7",
                    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                ),
                40,
            ),
        ],
    ),
    (
        &[2],
        "Linux",
        &[(
            hw(
                "",
                "",
                "",
                "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            ),
            1,
        )],
    ),
    (
        &[3, 7],
        "tvOS",
        &[(
            hw(
                "Apple",
                "Apple TV",
                "17.4",
                "AppleCoreMedia/1.0.0.21L227 (Apple TV; U; CPU OS 17_4 like Mac OS X; en_us)",
            ),
            1,
        )],
    ),
    (
        &[3, 7],
        "Roku",
        &[
            (
                hw("Roku", "Roku Ultra", "12.5", "Roku/DVP-12.5 (12.5.0.4178)"),
                50,
            ),
            (
                hw(
                    "Roku",
                    "Roku Streaming Stick 4K",
                    "12.0",
                    "Roku/DVP-12.0 (12.0.0.4182)",
                ),
                50,
            ),
        ],
    ),
    (
        &[3, 7],
        "Tizen",
        &[(
            hw(
                "Samsung",
                "QN65Q80C",
                "7.0",
                "Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) 94.0.4606.31/7.0 TV Safari/537.36",
            ),
            1,
        )],
    ),
    (
        &[3, 7],
        "webOS",
        &[(
            hw(
                "LG",
                "OLED55C3PUA",
                "23",
                "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/94.0.4606.128 Safari/537.36 WebAppManager",
            ),
            1,
        )],
    ),
    (
        &[6],
        "Android",
        &[(
            hw(
                "Amazon",
                "AFTKA",
                "11",
                "Mozilla/5.0 (Linux; Android 11; AFTKA Build/RS8149) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.230 Mobile Safari/537.36",
            ),
            1,
        )],
    ),
];

/// A model of `os` for a device of type `device_type`, by weight; `None` for a pair the table
/// does not have (the visitors' draws make none).
pub fn draw_hardware(rng: &mut Rng, device_type: u32, os: &str) -> Option<&'static Hardware> {
    let (_, _, models) = MODELS
        .iter()
        .find(|(types, name, _)| types.contains(&device_type) && *name == os)?;
    Some(rng.weighted(models))
}

/// The advertising id a user limiting ad tracking sends.
pub const ZERO_IFA: &str = "00000000-0000-0000-0000-000000000000";

/// Shares of users who limit ad tracking: most on Apple's OSes, which ask first (App Tracking
/// Transparency), few elsewhere.
const LIMITED_APPLE: f64 = 0.7;
const LIMITED_OTHERS: f64 = 0.05;

/// The advertising id of a device with `os` and type `device_type`: `None` for a PC, which has
/// none; [`ZERO_IFA`] when the user limits ad tracking; else a random (version 4) UUID.
pub fn draw_ifa(rng: &mut Rng, device_type: u32, os: &str) -> Option<String> {
    if device_type == 2 {
        return None;
    }
    let limited = match os {
        "iOS" | "iPadOS" | "tvOS" => LIMITED_APPLE,
        _ => LIMITED_OTHERS,
    };
    if rng.chance(limited) {
        return Some(ZERO_IFA.to_owned());
    }
    let (a, b) = (rng.next_u64(), rng.next_u64());
    Some(format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advertising_id_is_a_version_4_uuid_or_zero_and_pcs_have_none() {
        let mut rng = Rng::new(3);
        assert_eq!(draw_ifa(&mut rng, 2, "Windows"), None);
        let (mut zero, mut apple_zero) = (0, 0);
        for _ in 0..2000 {
            let ifa = draw_ifa(&mut rng, 4, "Android").expect("a phone has one");
            let groups: Vec<&str> = ifa.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(ifa.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
            if ifa == ZERO_IFA {
                zero += 1;
            } else {
                assert!(groups[2].starts_with('4'), "{ifa}");
                assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"), "{ifa}");
            }
            apple_zero += usize::from(draw_ifa(&mut rng, 4, "iOS").as_deref() == Some(ZERO_IFA));
        }
        assert!((60..140).contains(&zero), "{zero}");
        assert!((1300..1500).contains(&apple_zero), "{apple_zero}");
    }

    #[test]
    fn the_hardware_is_of_the_os_and_the_screen() {
        let mut rng = Rng::new(4);
        let iphone = draw_hardware(&mut rng, 4, "iOS").expect("iPhones");
        assert_eq!((iphone.make, iphone.model), ("Apple", "iPhone"));
        assert!(iphone.ua.contains(&iphone.osv.replace('.', "_")));
        let tablet = draw_hardware(&mut rng, 5, "Android").expect("Android tablets");
        assert!(tablet.ua.contains("Android") && !tablet.ua.contains("Mobile"));
        let pc = draw_hardware(&mut rng, 2, "Windows").expect("PCs");
        assert!(pc.make.is_empty() && pc.ua.contains("Windows NT"));
        assert_eq!(draw_hardware(&mut rng, 2, "Roku"), None);
    }
}
