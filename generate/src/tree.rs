//! The interest taxonomy generated campaigns target and generated requests carry: 18 roots and 120,
//! 250 and 300 nodes on the three levels below, written as tags (`travel/hotels/luxury/deals`).
//!
//! Built in code, always the same: hand-picked names for the first three levels
//! (`travel/hotels/luxury-hotels`), then on the fourth the audience intents of a third-level
//! interest (`travel/hotels/luxury-hotels/deals`), for most of them. In precis a tag matches itself
//! and every descendant, so a campaign on `travel/hotels` reaches a user tagged
//! `travel/hotels/luxury-hotels/deals`. `precis gen-campaigns` writes this tree as the
//! `taxonomy.toml` campaign files are checked against (the sample `campaigns/taxonomy.toml` is it).
//! It only names tags: checking them is the bidder's taxonomy's job.

use std::sync::OnceLock;

use super::rng::Rng;

/// One root: its name, how much of the traffic and the demand it draws (relative weight), the IAB
/// content category (v1) its pages and ads carry with the number of its subcategories, and its
/// second level, each node with its third level.
pub(super) struct Root {
    pub name: &'static str,
    pub weight: u32,
    pub iab: &'static str,
    pub iab_subcategories: u32,
    pub children: &'static [(&'static str, &'static [&'static str])],
}

pub(super) const ROOTS: [Root; 18] = [
    Root {
        name: "shopping",
        weight: 10,
        iab: "IAB22",
        iab_subcategories: 4,
        children: &[
            ("deals", &["coupons", "cashback", "flash-sales"]),
            ("electronics", &["tvs", "headphones"]),
            ("groceries", &["organic", "delivery"]),
            ("luxury", &["watches", "handbags"]),
            ("marketplaces", &["second-hand", "auctions"]),
            ("gifts", &["birthdays", "holidays"]),
            ("department-stores", &["loyalty-cards", "outlets"]),
        ],
    },
    Root {
        name: "entertainment",
        weight: 9,
        iab: "IAB1",
        iab_subcategories: 7,
        children: &[
            ("movies", &["comedy", "action"]),
            ("tv", &["drama", "reality"]),
            ("music", &["pop", "hip-hop"]),
            ("books", &["fiction", "non-fiction"]),
            ("streaming", &["subscriptions", "originals"]),
            ("celebrities", &["gossip", "red-carpet"]),
            ("live-events", &["concerts", "theater"]),
        ],
    },
    Root {
        name: "news",
        weight: 8,
        iab: "IAB12",
        iab_subcategories: 3,
        children: &[
            ("world", &["europe", "asia"]),
            ("politics", &["elections", "policy"]),
            ("local", &["community", "traffic"]),
            ("business-news", &["markets", "earnings"]),
            ("weather", &["forecasts", "storms"]),
            ("science", &["space", "climate"]),
        ],
    },
    Root {
        name: "tech",
        weight: 8,
        iab: "IAB19",
        iab_subcategories: 36,
        children: &[
            ("smartphones", &["iphone", "android-phones", "foldables"]),
            ("laptops", &["gaming-laptops", "ultrabooks"]),
            ("software", &["productivity", "design-tools"]),
            ("gadgets", &["drones", "cameras"]),
            ("cloud", &["storage", "hosting"]),
            ("cybersecurity", &["antivirus", "vpn"]),
            ("wearables", &["smartwatches", "fitness-trackers"]),
        ],
    },
    Root {
        name: "travel",
        weight: 7,
        iab: "IAB20",
        iab_subcategories: 27,
        children: &[
            ("flights", &["domestic", "international", "business-class"]),
            ("hotels", &["luxury-hotels", "budget-hotels"]),
            ("cruises", &["caribbean", "mediterranean"]),
            ("vacation-rentals", &["beach-houses", "cabins"]),
            ("car-rental", &["airport", "long-term"]),
            ("destinations", &["europe", "asia"]),
            ("business-travel", &["corporate", "conferences"]),
        ],
    },
    Root {
        name: "automotive",
        weight: 7,
        iab: "IAB2",
        iab_subcategories: 23,
        children: &[
            ("cars", &["sedans", "hatchbacks"]),
            ("suv", &["compact-suv", "luxury-suv", "seven-seater"]),
            ("pickup-trucks", &["full-size", "midsize"]),
            ("electric-vehicles", &["charging", "hybrids"]),
            ("motorcycles", &["sport-bikes", "cruisers"]),
            ("auto-parts", &["tires", "accessories"]),
            ("auto-repair", &["maintenance", "body-shops"]),
        ],
    },
    Root {
        name: "finance",
        weight: 7,
        iab: "IAB13",
        iab_subcategories: 12,
        children: &[
            ("banking", &["checking", "savings"]),
            (
                "credit-cards",
                &["rewards", "travel-cards", "balance-transfer"],
            ),
            ("investing", &["stocks", "funds"]),
            ("insurance", &["life", "home-insurance"]),
            ("loans", &["personal-loans", "student-loans"]),
            ("retirement", &["pensions", "annuities"]),
            ("crypto", &["bitcoin", "exchanges"]),
        ],
    },
    Root {
        name: "food",
        weight: 6,
        iab: "IAB8",
        iab_subcategories: 18,
        children: &[
            ("recipes", &["quick-meals", "healthy-eating"]),
            ("restaurants", &["fine-dining", "takeout"]),
            ("fast-food", &["burgers", "pizza"]),
            ("baking", &["bread", "desserts"]),
            ("vegetarian", &["vegan", "plant-based"]),
            ("wine", &["red-wine", "sparkling"]),
            ("coffee", &["espresso", "coffee-shops"]),
        ],
    },
    Root {
        name: "health",
        weight: 6,
        iab: "IAB7",
        iab_subcategories: 45,
        children: &[
            ("nutrition", &["supplements", "diets", "vitamins"]),
            ("mental-health", &["therapy", "meditation"]),
            ("diabetes", &["type-1", "type-2"]),
            ("allergies", &["hay-fever", "food-allergies"]),
            ("dental", &["orthodontics", "whitening"]),
            ("pharmacy", &["prescriptions", "otc"]),
            ("weight-loss", &["programs", "medication"]),
        ],
    },
    Root {
        name: "sports",
        weight: 6,
        iab: "IAB17",
        iab_subcategories: 44,
        children: &[
            ("football", &["nfl", "fantasy-football"]),
            ("basketball", &["nba", "college-basketball"]),
            (
                "soccer",
                &["premier-league", "world-cup", "champions-league"],
            ),
            ("running", &["marathons", "trail-running"]),
            ("cycling", &["road-bikes", "mountain-bikes"]),
            ("golf", &["equipment", "courses"]),
            ("fitness", &["gyms", "home-workouts"]),
        ],
    },
    Root {
        name: "fashion",
        weight: 6,
        iab: "IAB18",
        iab_subcategories: 6,
        children: &[
            ("womens-clothing", &["dresses", "workwear"]),
            ("mens-clothing", &["suits", "casual"]),
            ("shoes", &["sneakers", "boots"]),
            ("accessories", &["handbags", "sunglasses"]),
            ("jewelry", &["rings", "watches"]),
            ("beauty", &["skincare", "makeup"]),
            ("streetwear", &["hoodies", "limited-drops"]),
        ],
    },
    Root {
        name: "gaming",
        weight: 6,
        // IAB9 is Hobbies & Interests; IAB9-30 its video and computer games.
        iab: "IAB9-30",
        iab_subcategories: 0,
        children: &[
            ("console", &["playstation", "xbox", "nintendo"]),
            ("pc", &["steam", "hardware"]),
            ("mobile-games", &["puzzle", "casino"]),
            ("esports", &["tournaments", "teams"]),
            ("rpg", &["mmo", "open-world"]),
            ("shooters", &["battle-royale", "tactical"]),
            ("strategy", &["real-time", "turn-based"]),
        ],
    },
    Root {
        name: "home",
        weight: 5,
        iab: "IAB10",
        iab_subcategories: 9,
        children: &[
            ("furniture", &["sofas", "beds"]),
            ("gardening", &["plants", "tools"]),
            ("home-improvement", &["diy", "contractors"]),
            ("appliances", &["kitchen-appliances", "laundry"]),
            ("decor", &["lighting", "rugs"]),
            ("smart-home", &["speakers", "security-cameras"]),
            ("cleaning", &["vacuums", "supplies"]),
        ],
    },
    Root {
        name: "family",
        weight: 4,
        iab: "IAB6",
        iab_subcategories: 9,
        children: &[
            ("parenting", &["activities", "schools"]),
            ("babies", &["diapers", "strollers"]),
            ("pregnancy", &["prenatal", "baby-names"]),
            ("toddlers", &["toys", "childcare"]),
            ("teens", &["college-prep", "driving"]),
            ("weddings", &["planning", "venues", "dresses"]),
        ],
    },
    Root {
        name: "business",
        weight: 4,
        iab: "IAB3",
        iab_subcategories: 12,
        children: &[
            ("marketing", &["advertising", "social-media"]),
            ("small-business", &["accounting", "payroll"]),
            ("careers", &["job-search", "resumes"]),
            ("hr", &["recruiting", "benefits"]),
            ("b2b-software", &["crm", "erp"]),
            ("office-supplies", &["printers", "stationery"]),
        ],
    },
    Root {
        name: "education",
        weight: 3,
        iab: "IAB5",
        iab_subcategories: 15,
        children: &[
            ("online-courses", &["coding", "data-science", "design"]),
            ("languages", &["english", "spanish"]),
            ("college", &["admissions", "scholarships"]),
            ("k12", &["tutoring", "homeschool"]),
            ("test-prep", &["sat", "gmat"]),
            (
                "certifications",
                &["it-certifications", "project-management"],
            ),
        ],
    },
    Root {
        name: "real-estate",
        weight: 3,
        iab: "IAB21",
        iab_subcategories: 3,
        children: &[
            ("buying", &["first-time-buyers", "investors"]),
            ("renting", &["apartments", "roommates"]),
            ("mortgages", &["refinancing", "rates"]),
            ("commercial", &["office-space", "retail-space"]),
            ("new-homes", &["condos", "townhouses"]),
            ("luxury-homes", &["waterfront", "penthouses"]),
        ],
    },
    Root {
        name: "pets",
        weight: 3,
        iab: "IAB16",
        iab_subcategories: 7,
        children: &[
            ("dogs", &["puppies", "training"]),
            ("cats", &["kittens", "litter"]),
            ("fish", &["aquariums", "tropical"]),
            ("birds", &["parrots", "bird-food"]),
            ("pet-food", &["dry-food", "treats"]),
            ("pet-insurance", &["accident", "wellness"]),
        ],
    },
];

/// What the fourth level says about a user: where they stand with a third-level interest.
const INTENTS: [&str; 12] = [
    "research",
    "reviews",
    "deals",
    "compare",
    "how-to",
    "news",
    "enthusiasts",
    "in-market",
    "loyal-customers",
    "lapsed-customers",
    "high-spenders",
    "new-customers",
];

/// One node: a tag and where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The tag, `/`-separated from its root: `travel/hotels/luxury/deals`.
    pub path: String,
    /// 1 for a root, 4 for the deepest level.
    pub depth: u8,
    /// Index of the parent in [`Tree::nodes`]; `None` for a root.
    pub parent: Option<usize>,
    /// Index of its root.
    pub root: usize,
    /// The node and its descendants are `nodes[own index..end]` (nodes are in depth-first order).
    pub end: usize,
}

/// The whole tree, depth first: each root is followed by its subtree.
#[derive(Debug)]
pub struct Tree {
    nodes: Vec<Node>,
    roots: Vec<usize>,
}

/// A root's ordinal (0 to 17: its node is `tree().roots()[ordinal]`), by how much traffic and
/// demand it draws: shopping and entertainment most, pets least.
pub fn draw_root(rng: &mut Rng) -> usize {
    let ordinals: Vec<usize> = (0..ROOTS.len()).collect();
    rng.weighted_by(&ordinals, |&r| ROOTS[r].weight)
        .copied()
        .unwrap_or(0)
}

/// The tree, built on first use.
pub fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(Tree::build)
}

impl Tree {
    fn build() -> Tree {
        let mut nodes: Vec<Node> = Vec::with_capacity(700);
        let mut roots = Vec::with_capacity(ROOTS.len());
        // Third-level nodes have 2, 1, 0, 1, 2 intents in turn, across the tree: 250 / 5 × 6 = 300.
        let mut third = 0usize;
        fn push(nodes: &mut Vec<Node>, path: String, depth: u8, parent: Option<usize>) -> usize {
            let at = nodes.len();
            let root = parent.map_or(at, |p| nodes[p].root);
            nodes.push(Node {
                path,
                depth,
                parent,
                root,
                end: at + 1,
            });
            at
        }
        for spec in &ROOTS {
            let root = push(&mut nodes, spec.name.to_owned(), 1, None);
            roots.push(root);
            for (child, grandchildren) in spec.children {
                let level2 = push(&mut nodes, format!("{}/{child}", spec.name), 2, Some(root));
                for grandchild in *grandchildren {
                    let path = format!("{}/{grandchild}", nodes[level2].path);
                    let level3 = push(&mut nodes, path, 3, Some(level2));
                    let intents = [2, 1, 0, 1, 2][third % 5];
                    for k in 0..intents {
                        let intent = INTENTS[(third * 5 + k * 7) % INTENTS.len()];
                        let path = format!("{}/{intent}", nodes[level3].path);
                        push(&mut nodes, path, 4, Some(level3));
                    }
                    third += 1;
                }
            }
        }
        // Each node's subtree ends where the next node at its depth or shallower begins.
        for i in 0..nodes.len() {
            let end = nodes[i + 1..]
                .iter()
                .position(|n| n.depth <= nodes[i].depth)
                .map_or(nodes.len(), |offset| i + 1 + offset);
            nodes[i].end = end;
        }
        Tree { nodes, roots }
    }

    /// Every node, depth first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The roots' indexes in [`Tree::nodes`].
    pub fn roots(&self) -> &[usize] {
        &self.roots
    }

    /// The nodes at `depth` (1 to 4).
    pub fn level(&self, depth: u8) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.depth == depth)
    }

    /// The node at `index` and everything below it.
    pub fn subtree(&self, index: usize) -> &[Node] {
        &self.nodes[index..self.nodes[index].end]
    }

    /// The node with this tag, if any.
    pub fn find(&self, path: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.path == path)
    }

    /// The IAB content category (v1) of the root of node `index`: what pages about it are
    /// classified as, and what its advertisers' ads are.
    pub fn iab_category(&self, index: usize) -> &'static str {
        ROOTS[self.root_ordinal(index)].iab
    }

    /// How much of the traffic and of the demand the root of node `index` draws, relative to the
    /// other roots (what [`draw_root`] draws by).
    pub fn weight(&self, index: usize) -> u32 {
        ROOTS[self.root_ordinal(index)].weight
    }

    /// The position of the root at node `index` among the roots (0 to 17).
    pub fn root_ordinal(&self, index: usize) -> usize {
        let root = self.nodes[index].root;
        self.roots.iter().position(|&r| r == root).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eighteen_roots_and_about_120_250_300_nodes_below() {
        let t = tree();
        let sizes: Vec<usize> = (1..=4).map(|d| t.level(d).count()).collect();
        assert_eq!(sizes, [18, 120, 250, 300]);
        assert_eq!(t.roots().len(), 18);
    }

    #[test]
    fn paths_are_unique_and_each_node_sits_under_its_parent() {
        let t = tree();
        let mut paths: Vec<&str> = t.nodes().iter().map(|n| n.path.as_str()).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), t.nodes().len(), "no path twice");
        let under = |path: &str, above: &str| {
            path.strip_prefix(above)
                .is_some_and(|rest| rest.starts_with('/'))
        };
        for (i, node) in t.nodes().iter().enumerate() {
            assert_eq!(node.path.split('/').count(), usize::from(node.depth));
            if let Some(parent) = node.parent {
                assert!(under(&node.path, &t.nodes()[parent].path), "{}", node.path);
            }
            for below in &t.subtree(i)[1..] {
                assert!(under(&below.path, &node.path), "{}", below.path);
            }
            assert_eq!(t.find(&node.path), Some(i));
        }
        assert_eq!(
            t.subtree(t.roots()[0]).len() + t.subtree(t.roots()[1]).len(),
            t.roots()[2]
        );
    }
}
