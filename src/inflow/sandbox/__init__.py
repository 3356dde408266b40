"""Provider emulators: each provider's real wire format on local HTTP, for tests and the demo.

| module | holds |
|---|---|
| `app` | `create_app()`: emulators under `/{slug}`, `/_sandbox` control routes, middleware |
| `registry` | `EMULATORS`: slug → `Emulator` (one line per provider) |
| `emulator` | `Emulator` (what a provider declares), `Reject`, JSON response helpers |
| `state` | per-app live state: seed, volume, `Faults`, stats, issued tokens; `get_state()` |
| `faults` | the fault vocabulary and `decide()`: header or seeded-RNG driven |
| `middleware` | stats, faults, rate-limit headers, truncated and dropped bodies |
| `stats` | request counters and Retry-After violations |
| `data` | deterministic, lazy generators (`stable_hash`, `LazyRecords`, `DailySeries`) |
| `oauth`, `tokens` | `OAuthServer`: authorize, token (4 grants), revoke, `authenticate()` |
| `control` | `/_sandbox/credentials`, `/config`, `/stats`, `/expected`, `/reset`, `/oauth/revoke-all` |
| `example` | the `example` provider |

Adding an emulator: a module `inflow/sandbox/<slug>.py` that builds an `APIRouter` (its
handlers read `get_state(request, SLUG)` for seed and volume, and `raise Reject(response)` to
refuse), optionally an `OAuthServer` whose `router(...)` it includes and whose
`authenticate()`/`dependency()` guards its routes, and ends with `EMULATOR = Emulator(...)`;
then one line in `registry.py`. Nothing here imports the rest of Inflow.
"""

from inflow.sandbox.app import create_app
from inflow.sandbox.emulator import Emulator, Reject
from inflow.sandbox.registry import EMULATORS
from inflow.sandbox.state import get_state

__all__ = ["EMULATORS", "Emulator", "Reject", "create_app", "get_state"]
