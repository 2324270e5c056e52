"""The register: marking attendance, closing it, and the no-show notices that follow.

The register opens ``policy.register_opens_before`` (15 minutes) before the start. A trainer marks
each booking attended, partly attended or no-show and closes the register; after that only an
admin may change a mark, and the change is audited. Once a register is closed, each no-show who
gave no prior notice gets a notice, and so does the line manager who approved the booking, with
the policy's charge (if any) recorded. A notice already sent about a mark that is later changed is
followed by a correction; one still waiting in the outbox is withdrawn instead.

Prior notice is a reason recorded while the register was still open (``mark(...,
prior_notice=...)``): the delegate rang the trainer or the training team to say they could not come.

The pieces live in their own modules and are re-exported here, so ``schedules.attendance``
imports as before: ``schedules.register`` (what is on the register, when it opens),
``schedules.marking`` (one mark and its corrections), ``schedules.register_closing``,
``schedules.no_shows`` (notices and reasons) and ``schedules.bulk_marks`` (several marks at once
and the attendance CSV import).
"""

from __future__ import annotations

from schedules.bulk_marks import (
    MarkRequest as MarkRequest,
)
from schedules.bulk_marks import (
    RegisterError as RegisterError,
)
from schedules.bulk_marks import (
    apply_marks as apply_marks,
)
from schedules.bulk_marks import (
    read_marks_csv as read_marks_csv,
)
from schedules.marking import (
    MarkResult as MarkResult,
)
from schedules.marking import (
    check_mark as check_mark,
)
from schedules.marking import (
    mark as mark,
)
from schedules.marking import (
    parse_mark as parse_mark,
)
from schedules.no_shows import (
    NO_SHOW_TEMPLATES as NO_SHOW_TEMPLATES,
)
from schedules.no_shows import (
    REASON_LINK_LIFE as REASON_LINK_LIFE,
)
from schedules.no_shows import (
    process_closed_registers as process_closed_registers,
)
from schedules.no_shows import (
    record_reason as record_reason,
)
from schedules.register import (
    LONDON as LONDON,
)
from schedules.register import (
    MARKS as MARKS,
)
from schedules.register import (
    ON_REGISTER as ON_REGISTER,
)
from schedules.register import (
    AttendanceError as AttendanceError,
)
from schedules.register import (
    bookings_by_ref as bookings_by_ref,
)
from schedules.register import (
    register_bookings as register_bookings,
)
from schedules.register import (
    register_is_open as register_is_open,
)
from schedules.register import (
    register_opens_at as register_opens_at,
)
from schedules.register import (
    unmarked as unmarked,
)
from schedules.register_closing import (
    close_register as close_register,
)
