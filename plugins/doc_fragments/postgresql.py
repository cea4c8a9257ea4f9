# Copyright: (c) 2026, cachestack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the cachestack.aws PostgreSQL modules."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host running the database.
      - When empty, the module connects through the local Unix socket (see O(login_unix_socket)).
    type: str
    default: ''
    aliases: [host]
  login_unix_socket:
    description:
      - Directory of the Unix domain socket for local connections.
      - Used when O(login_host) is empty or V(localhost).
    type: str
    default: ''
    aliases: [unix_socket]
  login_port:
    description:
      - Database port to connect to.
    type: int
    default: 5432
    aliases: [port]
  login_user:
    description:
      - The role this module uses to open its PostgreSQL session.
    type: str
    default: postgres
    aliases: [login]
  login_password:
    description:
      - The password of O(login_user).
      - It is never written to the module's output, even when the connection fails.
    type: str
    default: ''
  login_db:
    description:
      - Name of the database to connect to.
      - When empty, libpq's default applies (a database named like O(login_user)).
    type: str
    default: ''
    aliases: [db]
  ssl_mode:
    description:
      - Whether, or with what priority, an SSL TCP/IP connection is negotiated with the server.
      - See U(https://www.postgresql.org/docs/current/libpq-ssl.html) for the modes.
      - The default, V(prefer), matches libpq's.
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - File of the certificate authorities (CA) the server's certificate must be signed by.
      - Used with O(ssl_mode=verify-ca) or O(ssl_mode=verify-full).
    type: str
    aliases: [ssl_rootcert]
  connect_timeout:
    description:
      - Seconds to wait for the connection to be established.
      - V(0) waits indefinitely.
    type: int
    default: 10
notes:
  - The modules use C(psycopg2) on the managed host (the host the task runs on), which is
    often not the database server itself, for example with RDS.
requirements:
  - psycopg2 >= 2.8
"""
