--
-- PostgreSQL database cluster dump
--

\restrict zAAMQwPoBaEbdK5DPO9783qUbuNBhBFGnC3fKIp6Yib1ofmZoOXoemKibvbdLhv

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;

--
-- User Configurations
--








\unrestrict zAAMQwPoBaEbdK5DPO9783qUbuNBhBFGnC3fKIp6Yib1ofmZoOXoemKibvbdLhv

--
-- Databases
--

--
-- Database "template1" dump
--

\connect template1

--
-- PostgreSQL database dump
--

\restrict JbghcCxFmJq3dRwQwlXZGkgxrWdbzkx7ypyyEs7beyo43rklPPtPit5iLYb1FLp

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- PostgreSQL database dump complete
--

\unrestrict JbghcCxFmJq3dRwQwlXZGkgxrWdbzkx7ypyyEs7beyo43rklPPtPit5iLYb1FLp

--
-- Database "app" dump
--

--
-- PostgreSQL database dump
--

\restrict numhzBov3G8AXWsCg9HoKlL92fJlWcYprvES5b0ufytu4531raECiBrMGTeDV1E

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: app; Type: DATABASE; Schema: -; Owner: postgres
--

CREATE DATABASE app WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';


ALTER DATABASE app OWNER TO postgres;

\unrestrict numhzBov3G8AXWsCg9HoKlL92fJlWcYprvES5b0ufytu4531raECiBrMGTeDV1E
\connect app
\restrict numhzBov3G8AXWsCg9HoKlL92fJlWcYprvES5b0ufytu4531raECiBrMGTeDV1E

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: Odd Name; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public."Odd Name" (
    x integer
);


ALTER TABLE public."Odd Name" OWNER TO postgres;

--
-- Name: items; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.items (
    id integer NOT NULL,
    v text
);


ALTER TABLE public.items OWNER TO postgres;

--
-- Data for Name: Odd Name; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public."Odd Name" (x) FROM stdin;
1
2
\.


--
-- Data for Name: items; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public.items (id, v) FROM stdin;
1	v1
2	v2
3	v3
4	v4
5	v5
6	v6
7	v7
8	v8
9	v9
10	v10
11	v11
12	v12
13	v13
14	v14
15	v15
16	v16
17	v17
18	v18
19	v19
20	v20
\.


--
-- Name: items items_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public.items
    ADD CONSTRAINT items_pkey PRIMARY KEY (id);


--
-- PostgreSQL database dump complete
--

\unrestrict numhzBov3G8AXWsCg9HoKlL92fJlWcYprvES5b0ufytu4531raECiBrMGTeDV1E

--
-- Database "postgres" dump
--

\connect postgres

--
-- PostgreSQL database dump
--

\restrict WRmEhR4Vzst5vGzJmTsm5TPb1keZEVF1SBAeupjGGaOP1y7zUTQuPX69UGEMElg

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- PostgreSQL database dump complete
--

\unrestrict WRmEhR4Vzst5vGzJmTsm5TPb1keZEVF1SBAeupjGGaOP1y7zUTQuPX69UGEMElg

--
-- PostgreSQL database cluster dump complete
--

