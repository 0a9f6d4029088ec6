--
-- PostgreSQL database dump
--

\restrict u65d98yjAITabm5cKIwlBFlE0mqtUjXRrda5d9vfbbKGFLBinmAZl47ync21GWV

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

\unrestrict u65d98yjAITabm5cKIwlBFlE0mqtUjXRrda5d9vfbbKGFLBinmAZl47ync21GWV

