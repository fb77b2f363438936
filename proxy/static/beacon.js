try{let T=256,U=2048,F=64,K=64,M=16,E=864e5,L=50,W=2e4,c=document.querySelector("[data-refract-beacon]").dataset,m=JSON.parse(c.metrics),r=window.refract=window.refract||{},q=[],a,d=0,i,n=0,z=0,j,
b=(t,e)=>[...t].slice(0,e).join(""),P=()=>b(location.pathname,U),l=P(),N=()=>Math.floor(+new Date)||0,Y=t=>{try{t()}catch{}},
J=(t,e)=>t&&typeof t=="object"?Array.isArray(t)?"["+t.map(J).join()+"]":"{"+Object.keys(t).flatMap(k=>(e=J(t[k]))?J(k)+":"+e:[]).join()+"}":JSON.stringify(typeof t=="string"?t.replace(/\p{Cs}/gu,"\ufffd"):t),
o=(t,e)=>{t.ts=N();q[499]||q.push([l,e,J(t)])},
v=(e=N())=>{a&&e>a&&o({t:"engage",ms:Math.min(e-a,E)});a=!document.hidden&&e},
g=(t=P())=>{t!=l&&(v(),l=t,d=0)},
s=(x,B={},S=[],e)=>{g();v();if(x||z<N()){for(let[u,k,t]of q.splice(0))(e=B[k+u])&&!e[1][L-1]&&e[2]+t.length<W||S.push(e=B[k+u]=[u,[],0,k]),e[1].push(t),e[2]+=t.length;S.map(f)}},
f=e=>fetch(c.collect,{method:"POST",body:'{"v":1,"u":'+J(e[0])+',"e":['+e[1].join()+"]}",headers:{"Content-Type":"application/json"},keepalive:1}).then(t=>t.status==400?t.json().then(t=>(t=/^e\.(\d+)/.exec(t.error))&&e[1].splice(t[1],1)[0]&&e[1][0]&&f(e)):t.status==429||t.status==503?R(e,t.headers.get("Retry-After")):n=0).catch(()=>0),
R=(e,t)=>{z>N()||++n>5||(t=Math.min(1e3*(+t||2**n),6e4),z=N()+t,setTimeout(()=>{z=0;Y(s)},t));n<6&&q.unshift(...e[1].map(t=>[e[0],e[3],t]))},
y=()=>{for(;d<4&&(scrollY+innerHeight+1)*4>(d+1)*document.body.scrollHeight;)p({t:"scroll",d:++d*25})},
w=(t,e=3)=>(e&&t.parentNode!=document.body?w(t.parentNode,e-1)+">":"")+t.localName+(t.id?"#"+t.id:[,...t.classList].slice(0,3).join(".")),
h={click:(t,e,x)=>{if(t=t.target.closest("a,button,[type=submit],[type=button],[role=button]")){e=t.host&&b(t.origin+t.pathname,U);p({t:"click",s:[...w(t)].slice(-T).join(""),h:e,m:k(m.click,t)});e&&t.host!=location.host&&p({t:"outbound",h:e});(x=/\.(pdf|(doc|xls|ppt)x?|csv|zip|gz|dmg|exe|pkg|key|odt|txt)$/i.exec(e))&&p({t:"download",h:e,x:x[1].toLowerCase()})}},
submit:(t,e=t.target,u=new Set,o,x)=>{for(t of e.elements)(i=b(t.name,K))&&u.add(i),"emailDomain"in c&&/^(email|text)$/.test(t.type)&&/email/i.test(t.type+i)&&(x=/@((?:[a-z\d-]{1,63}\.)+[a-z]{2,63})$/i.exec(t.value))&&(o=x[1].toLowerCase());p({t:"form",id:b(e.getAttribute("id")||"",T),a:b((e.getAttribute("action")||"").split(/[?#]/)[0],U),f:[...u].slice(0,F),m:k(m.form,e),dom:o},1)},
visibilitychange:()=>s(document.hidden),pagehide:()=>{s(1);a=0},scroll:y,load:y,popstate:()=>g()},
u=t=>{try{g();o({t:"track",n:t[0],p:t[1]},1);j||(j=setTimeout(()=>{j=0;Y(s)},1e3))}catch{}},
p=(t,e)=>{g();o(t);(q.length>19||e)&&s(e)},
k=(t,e,o=[])=>{for(i in t)try{e.closest(t[i])&&o.push(i)}catch{}return o.slice(0,M)}
if(r.b)throw 0;r.b=1
for(i in h)addEventListener(i,t=>{try{h[t.type](t)}catch{}},!0)
for(let x of["pushState","replaceState"]){let f=history[x];history[x]=function(...t){t=f.apply(this,t);Y(g);return t}}
r.track=(...t)=>u(t)
s();(r.q||[]).map(u)
r.q={push:u}}catch{}
